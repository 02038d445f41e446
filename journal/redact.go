package journal

import "strings"

// Redacted replaces every secret value the journal would otherwise record.
const Redacted = "[REDACTED]"

// Sensitive reports whether a flag, variable or key name contains TOKEN, KEY,
// SECRET or PASSWORD, ignoring case ("HF_TOKEN", "--api-key", "db.Password").
func Sensitive(name string) bool {
	// One pass over name, since RedactLine asks this of every tail line.
	for i := 0; i < len(name); i++ {
		var word string
		switch toLower(name[i]) {
		case 't':
			word = "token"
		case 'k':
			word = "key"
		case 's':
			word = "secret"
		case 'p':
			word = "password"
		default:
			continue
		}
		if hasPrefixFold(name[i:], word) {
			return true
		}
	}
	return false
}

// hasPrefixFold reports whether s starts with lower, ignoring ASCII case;
// lower must be lowercase ASCII.
func hasPrefixFold(s, lower string) bool {
	if len(s) < len(lower) {
		return false
	}
	for j := 0; j < len(lower); j++ {
		if toLower(s[j]) != lower[j] {
			return false
		}
	}
	return true
}

func toLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// isNameChar reports whether c can be part of a flag, variable or key name.
func isNameChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.'
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// isName reports whether s is a non-empty run of name characters.
func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isNameChar(s[i]) {
			return false
		}
	}
	return true
}

// RedactArgv returns a copy of argv with secret values replaced by Redacted:
//
//   - the argument after a flag whose name is Sensitive ("--hf-token x"),
//     unless that argument starts with "-";
//   - the value of a NAME=value argument whose NAME is Sensitive, with or
//     without leading dashes ("--api_key=x", "HF_TOKEN=x" after env);
//   - NAME=value pairs and sensitive flags inside any other argument, as
//     RedactLine finds them (a prompt or a "bash -c" script).
//
// Empty values stay empty. RedactArgv(nil) is nil; argv is not modified.
func RedactArgv(argv []string) []string {
	if argv == nil {
		return nil
	}
	out := make([]string, len(argv))
	valueNext := false
	for i, a := range argv {
		if valueNext {
			valueNext = false
			if a != "" && !strings.HasPrefix(a, "-") {
				out[i] = Redacted
				continue
			}
		}
		if eq := strings.IndexByte(a, '='); eq >= 0 {
			if name := a[:eq]; isName(name) && Sensitive(name) {
				if eq+1 < len(a) {
					out[i] = a[:eq+1] + Redacted
				} else {
					out[i] = a
				}
				continue
			}
		} else if name := strings.TrimLeft(a, "-"); len(name) < len(a) && isName(name) && Sensitive(name) {
			valueNext = true
			out[i] = a
			continue
		}
		out[i] = RedactLine(a)
	}
	return out
}

// RedactEnv returns a copy of env in which the value of every Sensitive
// variable is Redacted and other values pass through RedactLine. Empty values
// stay empty. RedactEnv(nil) is nil; env is not modified.
func RedactEnv(env map[string]string) map[string]string {
	if env == nil {
		return nil
	}
	out := make(map[string]string, len(env))
	for k, v := range env {
		if v != "" && Sensitive(k) {
			out[k] = Redacted
		} else {
			out[k] = RedactLine(v)
		}
	}
	return out
}

// RedactLine returns s with secret values replaced by Redacted. It finds
//
//   - NAME=value pairs whose NAME is Sensitive ("HF_TOKEN=x",
//     "--api_key=x", "Namespace(hf_token='x')"); a quoted value is replaced
//     inside its quotes, an unquoted one runs to whitespace or one of
//     , ; & ) ] } and quotes;
//   - a Sensitive flag followed by whitespace and a value that does not
//     start with "-" ("--hf-token x").
//
// Names are runs of letters, digits, '_', '-' and '.'. A line that contains
// none of the sensitive words is returned as is, without allocating.
func RedactLine(s string) string {
	if !Sensitive(s) {
		return s
	}
	var b strings.Builder
	copied := 0
	redact := func(vs, ve int) {
		if ve <= vs || s[vs:ve] == Redacted {
			return
		}
		if b.Len() == 0 {
			b.Grow(len(s))
		}
		b.WriteString(s[copied:vs])
		b.WriteString(Redacted)
		copied = ve
	}
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == '=':
			j := i
			for j > 0 && isNameChar(s[j-1]) {
				j--
			}
			if j < i && Sensitive(s[j:i]) {
				vs, ve, next := valueSpan(s, i+1)
				redact(vs, ve)
				i = next
				continue
			}
		case c == '-' && (i == 0 || !isNameChar(s[i-1])):
			k := i
			for k < len(s) && s[k] == '-' {
				k++
			}
			e := k
			for e < len(s) && isNameChar(s[e]) {
				e++
			}
			if e > k && e < len(s) && isSpace(s[e]) && Sensitive(s[k:e]) {
				v := e
				for v < len(s) && isSpace(s[v]) {
					v++
				}
				if v < len(s) && s[v] != '-' {
					vs, ve, next := valueSpan(s, v)
					redact(vs, ve)
					i = next
					continue
				}
			}
			if e > i {
				i = e
				continue
			}
		}
		i++
	}
	if copied == 0 {
		return s
	}
	b.WriteString(s[copied:])
	return b.String()
}

// valueSpan returns where the value starting at v begins and ends, and where
// scanning continues. A quoted value is the text inside its quotes (to the
// end of s when the closing quote is missing).
func valueSpan(s string, v int) (start, end, next int) {
	if v >= len(s) {
		return v, v, v
	}
	if strings.HasPrefix(s[v:], Redacted) {
		return v, v + len(Redacted), v + len(Redacted)
	}
	if q := s[v]; q == '"' || q == '\'' || q == '`' {
		if k := strings.IndexByte(s[v+1:], q); k >= 0 {
			return v + 1, v + 1 + k, v + 2 + k
		}
		return v + 1, len(s), len(s)
	}
	e := v
	for e < len(s) && !isSpace(s[e]) && !isValueEnd(s[e]) {
		e++
	}
	return v, e, e
}

func isValueEnd(c byte) bool {
	switch c {
	case '"', '\'', '`', ',', ';', '&', ')', ']', '}':
		return true
	}
	return false
}

// redactLines returns a copy of lines passed through RedactLine.
func redactLines(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = RedactLine(l)
	}
	return out
}

// redactChanges returns a copy of cs in which a Sensitive What has its From
// and To redacted and other values pass through RedactLine.
func redactChanges(cs []Change) []Change {
	out := make([]Change, len(cs))
	for i, c := range cs {
		if Sensitive(c.What) {
			if c.From != "" {
				c.From = Redacted
			}
			if c.To != "" {
				c.To = Redacted
			}
		} else {
			c.From, c.To = RedactLine(c.From), RedactLine(c.To)
		}
		out[i] = c
	}
	return out
}
