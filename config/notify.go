package config

import (
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"unicode"
)

// NotifyEvents are the events a webhook may subscribe to, in the order documented. The
// notify package sends them; a test there keeps the two lists equal.
var NotifyEvents = []string{"failed", "partial", "quota_exhausted", "actions_failed", "stream_failing"}

// DefaultStreamFailingAfter is notify.stream_failing_after when the file gives none.
const DefaultStreamFailingAfter = 3

// Notify says where failures are reported (issue 14): webhooks that receive one JSON POST
// per event.
type Notify struct {
	Webhooks []Webhook `yaml:"webhooks"`
	// StreamFailingAfter is how many consecutive failed jobs make a stream_failing event
	// (sent once, when a stream reaches it). Default DefaultStreamFailingAfter.
	StreamFailingAfter int `yaml:"stream_failing_after"`
}

// Webhook is one receiver of notifications.
type Webhook struct {
	// URL says where the URL is read from ({env: NAME} or {file: PATH}), never the URL
	// itself: an incoming-webhook URL is a secret (whoever has it can post). It has the
	// shape and reading rules of a token source.
	URL TokenSource `yaml:"url"`
	// Events it receives, from NotifyEvents; after Load never empty (absent: all).
	Events []string `yaml:"events"`
}

// WebhookTarget is a webhook with its URL read.
type WebhookTarget struct {
	// URL is the secret URL: it prints only its source and a fingerprint; Value returns it
	// for the one request that needs it.
	URL    Token
	Events []string
}

// StreamFailingAfter is notify.stream_failing_after, or its default.
func (c *Config) StreamFailingAfter() int {
	if c.Notify == nil || c.Notify.StreamFailingAfter <= 0 {
		return DefaultStreamFailingAfter
	}
	return c.Notify.StreamFailingAfter
}

// notifyDefaults fills in the notify section's defaults; part of applyDefaults.
func (c *Config) notifyDefaults(dir string) {
	n := c.Notify
	if n == nil {
		return
	}
	if !c.has("notify.stream_failing_after") {
		n.StreamFailingAfter = DefaultStreamFailingAfter
	}
	for i := range n.Webhooks {
		w := &n.Webhooks[i]
		if w.URL.File != "" {
			w.URL.File = resolve(dir, w.URL.File)
		}
		if !c.has(fmt.Sprintf("notify.webhooks[%d].events", i)) {
			w.Events = slices.Clone(NotifyEvents)
		}
	}
}

func (v *validator) notify() {
	n := v.c.Notify
	if n == nil {
		if v.c.has("notify") {
			v.add(ErrMissingKey, "notify", "empty; give webhooks: [{url: {env: NAME}}], or leave the section out")
		}
		return
	}
	if len(n.Webhooks) == 0 {
		v.add(ErrMissingKey, "notify.webhooks", "want at least one webhook, e.g. webhooks: [{url: {env: DRX_WEBHOOK_URL}}]")
	}
	if n.StreamFailingAfter < 1 || n.StreamFailingAfter > 1000 {
		v.add(ErrBadValue, "notify.stream_failing_after", "want 1 to 1000 consecutive failed jobs, got %d", n.StreamFailingAfter)
	}
	seen := map[string]string{}
	for i, w := range n.Webhooks {
		p := fmt.Sprintf("notify.webhooks[%d]", i)
		key := p + ".url"
		switch s := w.URL; {
		case !v.c.has(key):
			v.add(ErrMissingKey, key, "missing; where the URL is read from: {env: NAME} or {file: PATH}")
		case s.Env != "" && s.File != "":
			v.add(ErrBadTokenSource, key, "give either env or file, not both")
		case s.Env == "" && s.File == "":
			v.add(ErrBadTokenSource, key, "want {env: NAME} or {file: PATH}; the URL itself never goes in this file")
		case s.Env != "" && !envRE.MatchString(s.Env):
			// Not echoed: a value that is not a variable name may be a pasted URL.
			v.add(ErrBadTokenSource, key+".env", "not a valid environment variable name (value not shown, in case it is the URL); put the URL in a variable and name the variable here")
		default:
			if prev, dup := seen[s.String()]; dup {
				v.add(ErrDuplicateName, key, "webhook source %s is already listed at %s", s.String(), prev)
			}
			seen[s.String()] = key
		}
		if v.c.has(p+".events") && len(w.Events) == 0 {
			v.add(ErrBadValue, p+".events", "empty list; leave the key out to receive every event")
		}
		events := map[string]bool{}
		for j, e := range w.Events {
			ek := fmt.Sprintf("%s.events[%d]", p, j)
			switch {
			case !slices.Contains(NotifyEvents, e):
				v.add(ErrUnknownEvent, ek, "unknown event %s; want some of %s", quoteKey(e), strings.Join(NotifyEvents, ", "))
			case events[e]:
				v.add(ErrDuplicateName, ek, "event %s is listed twice", e)
			}
			events[e] = true
		}
	}
}

// WebhookTargets reads the URL of every notify.webhooks entry, in order. A URL that
// cannot be read or is not an http(s) URL is an *Error (ErrMissingToken or
// ErrBadTokenSource) in the returned Errors, and that webhook is left out of the list; the
// warnings (a file others may read) are for the caller to log. No message contains a URL.
func (c *Config) WebhookTargets() ([]WebhookTarget, []Warning, error) {
	ts, warns, errs := c.readWebhooks(os.LookupEnv)
	return ts, warns, errs.err()
}

func (c *Config) readWebhooks(lookupEnv func(string) (string, bool)) ([]WebhookTarget, []Warning, Errors) {
	if c.Notify == nil {
		return nil, nil, nil
	}
	var (
		out   []WebhookTarget
		warns []Warning
		errs  Errors
	)
	for i, w := range c.Notify.Webhooks {
		key := fmt.Sprintf("notify.webhooks[%d].url", i)
		if w.URL.File != "" {
			key += ".file"
		} else {
			key += ".env"
		}
		tok, warning, problem, kind := readWebhookURL(w.URL, lookupEnv)
		if warning != "" {
			warns = append(warns, Warning{File: c.Path, Line: c.line(key), Key: key, Msg: warning})
		}
		if problem != "" {
			errs = append(errs, &Error{File: c.Path, Line: c.line(key), Key: key, Kind: kind, Msg: problem})
			continue
		}
		out = append(out, WebhookTarget{URL: tok, Events: slices.Clone(w.Events)})
	}
	return out, warns, errs
}

// readWebhookURL reads a webhook URL as any secret is read (SecretSource.Read: a set,
// non-empty variable, or a regular file holding only the secret, with a warning when
// others may read it) and checks that it is an http(s) URL. Neither the warning nor the
// problem holds the URL.
func readWebhookURL(s SecretSource, lookupEnv func(string) (string, bool)) (t Secret, warning, problem string, kind error) {
	if (s.Env == "") == (s.File == "") {
		return Secret{}, "", "want {env: NAME} or {file: PATH}", ErrBadTokenSource
	}
	t, warning, problem = s.Read("webhook URL", lookupEnv)
	if problem != "" {
		return Secret{}, warning, problem, ErrMissingToken
	}
	if msg := checkWebhookURL(t.Value()); msg != "" {
		where := "environment variable " + s.Env
		if s.File != "" {
			where = "webhook URL file " + s.File
		}
		return Secret{}, warning, fmt.Sprintf("%s %s (value not shown)", where, msg), ErrBadTokenSource
	}
	return t, warning, "", nil
}

// checkWebhookURL says why v is not a usable webhook URL, without quoting it; "" when it
// is one.
func checkWebhookURL(v string) string {
	if strings.ContainsFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return "holds more than one word or line; want just the URL"
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "is not an http(s) URL"
	}
	return ""
}
