package sim

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"
)

// webhookSink is a stand-in for a chat tool's incoming webhook, so drextract's
// notifications can be tried against the simulator alone:
//
//	POST /_sim/webhook   keeps the JSON body (the last maxWebhookPosts; 64 KiB each)
//	GET  /_sim/webhook   what it kept, oldest first, as a JSON array
//
// It is not part of the Datorama API.
type webhookSink struct {
	mu    sync.Mutex
	posts []json.RawMessage
}

const maxWebhookPosts = 100

func (k *webhookSink) post(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil || !json.Valid(b) {
		http.Error(w, "webhook: want a JSON body", http.StatusBadRequest)
		return
	}
	k.mu.Lock()
	k.posts = append(k.posts, b)
	if n := len(k.posts); n > maxWebhookPosts {
		k.posts = append([]json.RawMessage(nil), k.posts[n-maxWebhookPosts:]...)
	}
	k.mu.Unlock()
	writeJSON(w, map[string]bool{"ok": true})
}

func (k *webhookSink) list(w http.ResponseWriter, _ *http.Request) {
	k.mu.Lock()
	out := append([]json.RawMessage{}, k.posts...)
	k.mu.Unlock()
	writeJSON(w, out)
}
