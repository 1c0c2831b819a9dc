// Package main is Afterlife's reference function: a CloudEvents echo/transform over HTTP.
//
// Contract (the same whichever way it is served: main_wasip1.go, main_native.go, main_wasmedge.go):
//   - GET  /healthz  -> 200 "ok" (readiness)
//   - POST /         -> a CloudEvent in binary mode (ce-* headers) or structured mode
//     (Content-Type: application/cloudevents+json); replies 200 with a binary-mode CloudEvent:
//     ce-type dev.afterlife.echo.reply, ce-source /afterlife/echo, ce-id "<in id>-reply",
//     extension ce-echoid = the incoming id, JSON data {"id","source","type","subject","data","workMs"}.
//   - Simulated work: query ?workMs=N or extension ce-workms: N (0..60000) sleeps N ms first.
//   - Bad input -> 400 with {"error": "..."}; other paths -> 404; other methods -> 405.
//   - ce-* header values are percent-decoded on the way in and percent-encoded on the way out
//     (CloudEvents HTTP binding 3.1.3.2); structured-mode JSON carries them unencoded.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	replyType   = "dev.afterlife.echo.reply"
	replySource = "/afterlife/echo"
	maxWorkMs   = 60000
	maxBody     = 4 << 20
)

type event struct {
	ID          string          `json:"id"`
	Source      string          `json:"source"`
	Type        string          `json:"type"`
	SpecVersion string          `json:"specversion"`
	Subject     string          `json:"subject,omitempty"`
	WorkMs      json.RawMessage `json:"workms,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	DataBase64  string          `json:"data_base64,omitempty"`
}

type reply struct {
	ID      string          `json:"id"`
	Source  string          `json:"source"`
	Type    string          `json:"type"`
	Subject string          `json:"subject,omitempty"`
	Data    json.RawMessage `json:"data"`
	WorkMs  int             `json:"workMs"`
}

func newHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok")
	})
	mux.HandleFunc("/", handleEvent)
	return mux
}

func fail(w http.ResponseWriter, status int, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": fmt.Sprintf(format, args...)})
}

func handleEvent(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		fail(w, http.StatusNotFound, "no route for %s", r.URL.Path)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		fail(w, http.StatusMethodNotAllowed, "send a CloudEvent with POST")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		fail(w, http.StatusBadRequest, "reading body: %v", err)
		return
	}
	if len(body) > maxBody {
		fail(w, http.StatusRequestEntityTooLarge, "body larger than %d bytes", maxBody)
		return
	}
	in, err := parseEvent(r, body)
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	workMs, err := workFrom(r, in)
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	if workMs > 0 {
		time.Sleep(time.Duration(workMs) * time.Millisecond)
	}
	data := in.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	out, _ := json.Marshal(reply{ID: in.ID, Source: in.Source, Type: in.Type, Subject: in.Subject, Data: data, WorkMs: workMs})
	h := w.Header()
	h.Set("Ce-Specversion", "1.0")
	h.Set("Ce-Id", encodeHeader(in.ID+"-reply"))
	h.Set("Ce-Source", encodeHeader(replySource))
	h.Set("Ce-Type", encodeHeader(replyType))
	h.Set("Ce-Echoid", encodeHeader(in.ID))
	h.Set("Ce-Time", time.Now().UTC().Format(time.RFC3339Nano))
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// parseEvent reads a binary-mode or structured-mode CloudEvent and checks the required attributes.
func parseEvent(r *http.Request, body []byte) (event, error) {
	var in event
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType == "application/cloudevents+json" {
		if err := json.Unmarshal(body, &in); err != nil {
			return in, fmt.Errorf("structured CloudEvent is not valid JSON: %v", err)
		}
		if in.DataBase64 != "" && len(in.Data) == 0 {
			in.Data, _ = json.Marshal(in.DataBase64)
		}
	} else {
		var err error
		attr := func(name string) string {
			v, e := decodeHeader(r.Header.Get(name))
			if e != nil && err == nil {
				err = fmt.Errorf("header %s: %v", strings.ToLower(name), e)
			}
			return v
		}
		in = event{
			ID:          attr("Ce-Id"),
			Source:      attr("Ce-Source"),
			Type:        attr("Ce-Type"),
			SpecVersion: attr("Ce-Specversion"),
			Subject:     attr("Ce-Subject"),
		}
		if w := attr("Ce-Workms"); w != "" {
			in.WorkMs = json.RawMessage(strconv.Quote(w))
		}
		if err != nil {
			return in, err
		}
		if len(body) > 0 {
			if json.Valid(body) && (mediaType == "" || strings.HasSuffix(mediaType, "json")) {
				in.Data = json.RawMessage(body)
			} else {
				in.Data, _ = json.Marshal(string(body))
			}
		}
	}
	var missing []string
	for name, value := range map[string]string{"id": in.ID, "source": in.Source, "type": in.Type, "specversion": in.SpecVersion} {
		if value == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sortStrings(missing)
		return in, fmt.Errorf("not a CloudEvent: missing required attribute(s) %s (binary mode: ce-* headers)", strings.Join(missing, ", "))
	}
	if in.SpecVersion != "1.0" {
		return in, fmt.Errorf("unsupported specversion %q (want 1.0)", in.SpecVersion)
	}
	return in, nil
}

func workFrom(r *http.Request, in event) (int, error) {
	raw := r.URL.Query().Get("workMs")
	if raw == "" && len(in.WorkMs) > 0 {
		raw = strings.Trim(string(in.WorkMs), `"`)
	}
	if raw == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 0 || n > maxWorkMs {
		return 0, fmt.Errorf("workMs must be a whole number of milliseconds from 0 to %d, got %q", maxWorkMs, raw)
	}
	return n, nil
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// decodeHeader percent-decodes a binary-mode ce-* header value (CloudEvents HTTP binding
// 3.1.3.2). Go's header parsing has already trimmed the surrounding whitespace; '+' is not a
// space here, so this is path-style unescaping, and the bytes must be UTF-8.
func decodeHeader(v string) (string, error) {
	if !strings.Contains(v, "%") {
		return v, nil
	}
	s, err := url.PathUnescape(v)
	if err != nil {
		return "", fmt.Errorf("invalid percent-encoding in %q", v)
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("percent-decoded value of %q is not UTF-8", v)
	}
	return s, nil
}

// encodeHeader percent-encodes exactly what 3.1.3.2 requires: space, double quote, percent and
// every byte of the UTF-8 form outside printable ASCII (U+0021..U+007E).
func encodeHeader(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || c == '"' || c == '%' || c < 0x21 || c > 0x7e {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
