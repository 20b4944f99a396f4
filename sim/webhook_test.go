package sim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestWebhookSink: the stand-in webhook keeps what is posted to it and lists it back;
// a body that is not JSON is refused.
func TestWebhookSink(t *testing.T) {
	srv := httptest.NewServer(http.StripPrefix("/base", New(Options{Seed: 1, Streams: 2, Workspaces: 1})))
	defer srv.Close()
	for _, body := range []string{`{"event":"test"}`, `{"event":"failed","run_id":3}`} {
		resp, err := http.Post(srv.URL+"/base/_sim/webhook", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %s", body, resp.Status)
		}
	}
	resp, err := http.Post(srv.URL+"/base/_sim/webhook", "application/json", strings.NewReader("not json"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a body that is not JSON: %s", resp.Status)
	}
	resp, err = http.Get(srv.URL + "/base/_sim/webhook")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0]["event"] != "test" || got[1]["run_id"] != 3.0 {
		t.Errorf("GET /_sim/webhook = %v", got)
	}
}
