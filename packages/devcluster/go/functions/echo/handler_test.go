package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func serve(t *testing.T, r *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	newHandler().ServeHTTP(w, r)
	return w
}

func binaryEvent(id, source, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Ce-Specversion", "1.0")
	r.Header.Set("Ce-Id", id)
	r.Header.Set("Ce-Source", source)
	r.Header.Set("Ce-Type", "dev.afterlife.test")
	return r
}

func decodeReply(t *testing.T, w *httptest.ResponseRecorder) reply {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d, body %s", w.Code, w.Body)
	}
	var out reply
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("reply body %q: %v", w.Body, err)
	}
	return out
}

func TestHealthz(t *testing.T) {
	w := serve(t, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if w.Code != http.StatusOK || w.Body.String() != "ok" {
		t.Fatalf("got %d %q", w.Code, w.Body)
	}
}

func TestBinaryModeReply(t *testing.T) {
	r := binaryEvent("abc", "/src", `{"n":1}`)
	r.Header.Set("Ce-Subject", "s1")
	w := serve(t, r)
	out := decodeReply(t, w)
	h := w.Header()
	for name, want := range map[string]string{
		"Ce-Id": "abc-reply", "Ce-Echoid": "abc", "Ce-Source": replySource, "Ce-Type": replyType, "Ce-Specversion": "1.0",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, h.Get("Ce-Time")); err != nil {
		t.Errorf("Ce-Time: %v", err)
	}
	if out.ID != "abc" || out.Source != "/src" || out.Type != "dev.afterlife.test" || out.Subject != "s1" || string(out.Data) != `{"n":1}` || out.WorkMs != 0 {
		t.Errorf("reply %+v", out)
	}
}

func TestStructuredMode(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(
		`{"specversion":"1.0","id":"a b%","source":"/s","type":"t","data_base64":"aGk="}`))
	r.Header.Set("Content-Type", "application/cloudevents+json; charset=utf-8")
	w := serve(t, r)
	out := decodeReply(t, w)
	if out.ID != "a b%" || string(out.Data) != `"aGk="` {
		t.Errorf("reply %+v", out)
	}
	// JSON carried the raw id; the reply headers must still be percent-encoded.
	if got := w.Header().Get("Ce-Echoid"); got != "a%20b%25" {
		t.Errorf("Ce-Echoid = %q", got)
	}
}

func TestPercentDecodingOfIncomingHeaders(t *testing.T) {
	r := binaryEvent("id%20with%20space%25", "/a%20source/%22q%22", "")
	r.Header.Set("Ce-Subject", "caf%C3%A9")
	r.Header.Set("Ce-Workms", "%31")
	w := serve(t, r)
	out := decodeReply(t, w)
	if out.ID != "id with space%" || out.Source != `/a source/"q"` || out.Subject != "café" || out.WorkMs != 1 {
		t.Errorf("decoded %+v", out)
	}
	if string(out.Data) != "null" {
		t.Errorf("data = %s, want null for an empty body", out.Data)
	}
	// ...and encoded again on the way out: space, percent (and the rest) as %XX.
	if got := w.Header().Get("Ce-Echoid"); got != "id%20with%20space%25" {
		t.Errorf("Ce-Echoid = %q", got)
	}
	if got := w.Header().Get("Ce-Id"); got != "id%20with%20space%25-reply" {
		t.Errorf("Ce-Id = %q", got)
	}
}

func TestPercentEncodingOnReply(t *testing.T) {
	for in, want := range map[string]string{
		"plain-ASCII_~!#$&'()*+,/:;<=>?@[]^`{|}": "plain-ASCII_~!#$&'()*+,/:;<=>?@[]^`{|}",
		`a "b" 100%`:                             "a%20%22b%22%20100%25",
		"café\t€":                                "caf%C3%A9%09%E2%82%AC",
		"\x7f":                                   "%7F",
	} {
		if got := encodeHeader(in); got != want {
			t.Errorf("encodeHeader(%q) = %q, want %q", in, got, want)
		}
		if back, err := decodeHeader(encodeHeader(in)); err != nil || back != in {
			t.Errorf("round trip of %q: %q, %v", in, back, err)
		}
	}
	// '+' stays a plus: this is not form encoding.
	if got, _ := decodeHeader("a+b%2B"); got != "a+b+" {
		t.Errorf("decodeHeader(a+b%%2B) = %q", got)
	}
}

func TestBadPercentEncodingIs400(t *testing.T) {
	for _, id := range []string{"bad%zz", "trailing%2", "notutf8%C3%28"} {
		w := serve(t, binaryEvent(id, "/s", ""))
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "ce-id") {
			t.Errorf("id %q: %d %s", id, w.Code, w.Body)
		}
	}
}

func TestMethodAndPathErrors(t *testing.T) {
	w := serve(t, httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "POST" {
		t.Errorf("GET /: %d Allow=%q", w.Code, w.Header().Get("Allow"))
	}
	w = serve(t, httptest.NewRequest(http.MethodPost, "/other", nil))
	if w.Code != http.StatusNotFound || w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("POST /other: %d %s", w.Code, w.Body)
	}
}

func TestMissingAttributesIs400(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}"))
	r.Header.Set("Ce-Id", "x")
	w := serve(t, r)
	if w.Code != http.StatusBadRequest {
		t.Fatalf("status %d", w.Code)
	}
	var body map[string]string
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	if want := "missing required attribute(s) source, specversion, type"; !strings.Contains(body["error"], want) {
		t.Errorf("error %q does not contain %q", body["error"], want)
	}
	r = binaryEvent("x", "/s", "")
	r.Header.Set("Ce-Specversion", "0.3")
	if w := serve(t, r); w.Code != http.StatusBadRequest {
		t.Errorf("specversion 0.3: %d", w.Code)
	}
}

func TestWorkMs(t *testing.T) {
	r := binaryEvent("w", "/s", "")
	r.URL.RawQuery = "workMs=30"
	start := time.Now()
	out := decodeReply(t, serve(t, r))
	if out.WorkMs != 30 || time.Since(start) < 30*time.Millisecond {
		t.Errorf("workMs %d after %v", out.WorkMs, time.Since(start))
	}
	r = binaryEvent("w", "/s", "")
	r.Header.Set("Ce-Workms", "5")
	if out := decodeReply(t, serve(t, r)); out.WorkMs != 5 {
		t.Errorf("ce-workms: %d", out.WorkMs)
	}
	for _, q := range []string{"-1", "60001", "x"} {
		r := binaryEvent("w", "/s", "")
		r.URL.RawQuery = "workMs=" + q
		if w := serve(t, r); w.Code != http.StatusBadRequest {
			t.Errorf("workMs=%s: %d", q, w.Code)
		}
	}
}
