package classify

import "bytes"

// maxScan is how much of one line is looked at; the rest is ignored. It
// bounds the cost of a pattern on a pathological line.
const maxScan = 4 << 10

// clean returns the part of line that rules see: ANSI escapes removed, then
// torchrun rank prefixes, timestamps, glog/c10 headers and log levels taken
// off the front, then surrounding blanks trimmed. indented reports whether the
// message itself started with a blank (a traceback frame). buf is scratch
// space used only when line has escapes; the result may alias line or buf.
func clean(buf, line []byte) (out []byte, indented bool) {
	if len(line) > maxScan {
		line = line[:maxScan]
	}
	if bytes.IndexByte(line, 0x1b) >= 0 {
		line = stripANSI(buf[:0], line)
	}
	b := line
	for range 4 {
		t := trimLeft(b)
		n := 0
		switch {
		case len(t) == 0:
		case t[0] == '[':
			if n = rankPrefix(t); n == 0 {
				if n = c10Prefix(t); n == 0 {
					if n = bracketTime(t); n > 0 {
						n += levelAfterTime(t[n:])
					}
				}
			}
		case t[0] >= '0' && t[0] <= '9':
			if n = isoTime(t); n > 0 {
				n += levelAfterTime(t[n:])
			}
		case t[0] == 'I' || t[0] == 'W' || t[0] == 'E' || t[0] == 'F':
			if n = glogPrefix(t); n == 0 {
				n = levelColon(t)
			}
		default:
			n = levelColon(t)
		}
		if n == 0 {
			break
		}
		b = t[n:]
	}
	out = trimRight(trimLeft(b))
	return out, len(out) > 0 && (b[0] == ' ' || b[0] == '\t')
}

func trimLeft(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	return b
}

func trimRight(b []byte) []byte {
	for len(b) > 0 {
		c := b[len(b)-1]
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			break
		}
		b = b[:len(b)-1]
	}
	return b
}

// stripANSI appends line to dst without CSI, OSC and two-byte escape sequences.
func stripANSI(dst, line []byte) []byte {
	for i := 0; i < len(line); {
		c := line[i]
		if c != 0x1b {
			dst = append(dst, c)
			i++
			continue
		}
		i++
		if i >= len(line) {
			break
		}
		switch line[i] {
		case '[':
			i++
			for i < len(line) && line[i] >= 0x20 && line[i] <= 0x3f {
				i++
			}
			if i < len(line) && line[i] >= 0x40 && line[i] <= 0x7e {
				i++
			}
		case ']':
			i++
			for i < len(line) {
				if line[i] == 0x07 {
					i++
					break
				}
				if line[i] == 0x1b && i+1 < len(line) && line[i+1] == '\\' {
					i += 2
					break
				}
				i++
			}
		case '(', ')', '*', '+':
			i += 2
		default:
			i++
		}
	}
	return dst
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// rankPrefix matches torchrun's "[rank3]: " and "[default0]:" line prefixes.
func rankPrefix(b []byte) int {
	i := 1
	for i < len(b) && isLetter(b[i]) {
		i++
	}
	j := i
	for j < len(b) && isDigit(b[j]) {
		j++
	}
	if i == 1 || j == i || j+1 >= len(b) || b[j] != ']' || b[j+1] != ':' {
		return 0
	}
	if j+2 < len(b) && b[j+2] == ' ' {
		return j + 3
	}
	return j + 2
}

// c10Prefix matches PyTorch's C++ log headers: "[W socket.cpp:464] " and
// "[E1029 10:01:02.123456 12345 ProcessGroupNCCL.cpp:616] ".
func c10Prefix(b []byte) int {
	if len(b) < 6 || !isSeverity(b[1]) || (b[2] != ' ' && !isDigit(b[2])) {
		return 0
	}
	end := bytes.IndexByte(b[:min(len(b), 200)], ']')
	if end < 0 {
		return 0
	}
	colon := bytes.LastIndexByte(b[:end], ':')
	if colon < 0 || colon+1 >= end || !isDigit(b[colon+1]) {
		return 0
	}
	n := end + 1
	if n < len(b) && b[n] == ' ' {
		n++
	}
	return n
}

func isSeverity(c byte) bool { return c == 'I' || c == 'W' || c == 'E' || c == 'F' }

// glogPrefix matches "E0729 10:01:02.123456 12345 file.py:12] ".
func glogPrefix(b []byte) int {
	if len(b) < 16 || !isSeverity(b[0]) || !allDigits(b[1:5]) || b[5] != ' ' ||
		!isDigit(b[6]) || !isDigit(b[7]) || b[8] != ':' {
		return 0
	}
	end := bytes.IndexByte(b[:min(len(b), 200)], ']')
	if end < 0 {
		return 0
	}
	n := end + 1
	if n < len(b) && b[n] == ' ' {
		n++
	}
	return n
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return len(b) > 0
}

// bracketTime matches a bracketed timestamp such as "[2025-07-29 10:01:02,123]"
// or a kernel "[12345.678901]": digits and date punctuation only, with at
// least 8 characters, so that "[0]:" in torchrun's summary stays.
func bracketTime(b []byte) int {
	if len(b) < 10 || !isDigit(b[1]) {
		return 0
	}
	punct := false
	for i := 2; i < len(b) && i < 48; i++ {
		c := b[i]
		switch {
		case c == ']':
			if i-1 < 8 || !punct {
				return 0
			}
			return i + 1
		case isDigit(c), c == ' ', c == ',', c == 'T', c == 'Z', c == '+', c == '/':
		case c == '-', c == ':', c == '.':
			punct = true
		default:
			return 0
		}
	}
	return 0
}

// isoTime matches "2025-07-29 10:01:02", "2025-07-29T10:01:02.123Z" and
// "2025/07/29 10:01:02,123+02:00" at the start of b.
func isoTime(b []byte) int {
	if len(b) < 19 || !allDigits(b[0:4]) || (b[4] != '-' && b[4] != '/') || !allDigits(b[5:7]) ||
		b[7] != b[4] || !allDigits(b[8:10]) || (b[10] != ' ' && b[10] != 'T') ||
		!allDigits(b[11:13]) || b[13] != ':' || !allDigits(b[14:16]) || b[16] != ':' || !allDigits(b[17:19]) {
		return 0
	}
	n := 19
	if n+1 < len(b) && (b[n] == '.' || b[n] == ',') && isDigit(b[n+1]) {
		n++
		for n < len(b) && isDigit(b[n]) {
			n++
		}
	}
	switch {
	case n < len(b) && b[n] == 'Z':
		n++
	case n+2 < len(b) && (b[n] == '+' || b[n] == '-') && isDigit(b[n+1]) && isDigit(b[n+2]):
		n += 3
		for n < len(b) && (isDigit(b[n]) || b[n] == ':') {
			n++
		}
	}
	if n < len(b) && b[n] != ' ' && b[n] != ']' && b[n] != '|' && b[n] != '-' {
		return 0
	}
	return n
}

var levels = [...]string{"INFO", "WARNING", "WARN", "ERROR", "DEBUG", "CRITICAL", "FATAL", "TRACE", "NOTICE"}

// levelWord returns the length of a log level name at the start of b.
func levelWord(b []byte) int {
	for _, l := range levels {
		if len(b) >= len(l) && string(b[:len(l)]) == l {
			if len(b) == len(l) || !isLetter(b[len(l)]) {
				return len(l)
			}
		}
	}
	return 0
}

// levelAfterTime consumes separators and an optional level after a timestamp:
// " INFO: ", " - ERROR - ", " | WARNING | ", " [INFO] ".
func levelAfterTime(b []byte) int {
	n := skipSep(b, 0)
	open := n < len(b) && b[n] == '['
	if open {
		n++
	}
	if l := levelWord(b[n:]); l > 0 {
		n += l
		if open && n < len(b) && b[n] == ']' {
			n++
		}
		return skipSep(b, n)
	}
	return skipSep(b, 0)
}

func skipSep(b []byte, n int) int {
	for n < len(b) && (b[n] == ' ' || b[n] == '\t' || b[n] == '-' || b[n] == '|' || b[n] == ':') {
		n++
	}
	return n
}

// levelColon matches a bare "ERROR: " at the start of b.
func levelColon(b []byte) int {
	l := levelWord(b)
	if l == 0 || l+1 >= len(b) || b[l] != ':' || b[l+1] != ' ' {
		return 0
	}
	return l + 2
}
