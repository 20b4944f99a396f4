package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startSim runs `drextract sim ARGS` in-process and returns the printed variables (it
// waits for DATORAMA_TOKEN … DATORAMA_TOKEN_<tokens>) and a stop function that cancels
// the command and returns its exit code.
func startSim(t *testing.T, tokens int, args ...string) (vars map[string]string, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	code := make(chan int, 1)
	go func() {
		code <- DoContext(ctx, append([]string{"sim"}, args...), strings.NewReader(""), pw, &stderr)
		pw.Close()
	}()
	want := []string{"DATORAMA_BASE_URL", "DATORAMA_TOKEN"}
	for i := 2; i <= tokens; i++ {
		want = append(want, fmt.Sprintf("DATORAMA_TOKEN_%d", i))
	}
	got := make(chan map[string]string, 1)
	go func() {
		vars := map[string]string{}
		sc := bufio.NewScanner(pr)
		for len(vars) < len(want) && sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), "=")
			vars[k] = v
		}
		got <- vars
		_, _ = io.Copy(io.Discard, pr)
	}()
	stop = func() int {
		cancel()
		select {
		case c := <-code:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("sim did not stop within 10s of cancellation")
			return -1
		}
	}
	select {
	case vars = <-got:
	case <-time.After(20 * time.Second):
		stop()
		t.Fatal("sim printed nothing for 20s")
	}
	for _, k := range want {
		if vars[k] == "" {
			stop()
			t.Fatalf("sim printed %v, missing %s; stderr: %s", vars, k, stderr.String())
		}
	}
	return vars, stop
}

func getJSON(t *testing.T, url, token string, v any) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if v != nil {
		if err := json.NewDecoder(res.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
	return res
}

func TestSimCommand(t *testing.T) {
	vars, stop := startSim(t, 2, "--addr", "127.0.0.1:0", "--seed", "1", "--workspaces", "2", "--streams", "10", "--tokens", "2")
	base := vars["DATORAMA_BASE_URL"]
	if !strings.HasPrefix(base, "http://127.0.0.1:") || vars["DATORAMA_TOKEN_2"] == "" {
		t.Fatalf("printed %v", vars)
	}
	var ws []struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	}
	res := getJSON(t, base+"/v1/workspaces", vars["DATORAMA_TOKEN"], &ws)
	if res.StatusCode != 200 || len(ws) != 2 || res.Header.Get("X-PlatformRateLimit-Remaining") != "59" {
		t.Fatalf("workspaces: %d %v %v", res.StatusCode, ws, res.Header)
	}
	if res := getJSON(t, base+"/v1/workspaces", "", nil); res.StatusCode != 401 {
		t.Errorf("no token: %d", res.StatusCode)
	}
	// The offset clock advances through the control.
	var before, after struct{ Now int64 }
	getJSON(t, base+"/_sim/time", "", &before)
	r, err := http.Post(base+"/_sim/advance?by=90m", "", nil)
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("advance: %v %v", r, err)
	}
	r.Body.Close()
	getJSON(t, base+"/_sim/time", "", &after)
	if d := time.Duration(after.Now-before.Now) * time.Millisecond; d < 90*time.Minute || d > 91*time.Minute {
		t.Errorf("advance moved the clock by %v", d)
	}
	if code := stop(); code != ExitOK {
		t.Errorf("exit %d after cancellation, want 0", code)
	}

	// The same seed serves the same account.
	vars2, stop2 := startSim(t, 2, "--seed", "1", "--workspaces", "2", "--streams", "10", "--tokens", "2")
	defer stop2()
	var ws2 []struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	}
	getJSON(t, vars2["DATORAMA_BASE_URL"]+"/v1/workspaces", vars2["DATORAMA_TOKEN"], &ws2)
	if vars2["DATORAMA_TOKEN"] != vars["DATORAMA_TOKEN"] || len(ws2) != 2 || ws2[0] != ws[0] || ws2[1] != ws[1] {
		t.Errorf("seed 1 twice: %v / %v", ws, ws2)
	}
}

func TestSimCommandUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--addr", "0.0.0.0:0"}, "loopback"},
		{[]string{"--faults", "http500=2"}, "from 0 to 1"},
		{[]string{"--faults", "gremlins=0.1"}, "gremlins"},
		{[]string{"--stats-order", "sideways"}, "stats order"},
		{[]string{"--streams", "0"}, "--streams"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := DoContext(context.Background(), append([]string{"sim"}, tc.args...), strings.NewReader(""), &out, &errb)
			if code != ExitUsage || !strings.Contains(errb.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want %d mentioning %q", code, errb.String(), ExitUsage, tc.want)
			}
		})
	}
	var out, errb bytes.Buffer
	if code := DoContext(context.Background(), []string{"sim", "--help"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, kind := range []string{"http500", "storm429", "emptypage", "--stats-order", "--rerun-new-ids"} {
		if !strings.Contains(out.String(), kind) {
			t.Errorf("--help does not mention %s", kind)
		}
	}
}
