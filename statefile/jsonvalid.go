package statefile

// maxJSONDepth is encoding/json's nesting limit, which jsonValid shares.
const maxJSONDepth = 10000

// jsonValid reports whether data is exactly one JSON value with optional
// surrounding whitespace. It accepts exactly what json.Valid accepts (the
// fuzz test compares the two) and runs several times faster, which matters
// because every snapshot of a state file of a megabyte or more is validated
// first. Like json.Valid it does not check UTF-8 inside strings.
func jsonValid(data []byte) bool {
	const (
		wantValue  = iota // a value must come next
		afterValue        // a value has ended
		wantKey           // an object key must come next
	)
	var stack []byte // open containers, '{' or '['
	i, n := 0, len(data)
	state := wantValue
	for {
		i = skipJSONSpace(data, i)
		switch state {
		case wantValue:
			if i >= n {
				return false
			}
			state = afterValue
			switch c := data[i]; {
			case c == '{' || c == '[':
				if len(stack) >= maxJSONDepth {
					return false
				}
				end := byte('}')
				if c == '[' {
					end = ']'
				}
				i = skipJSONSpace(data, i+1)
				if i < n && data[i] == end {
					i++
					break
				}
				stack = append(stack, c)
				if c == '{' {
					state = wantKey
				} else {
					state = wantValue
				}
			case c == '"':
				i = scanJSONString(data, i+1)
			case c == '-' || c >= '0' && c <= '9':
				i = scanJSONNumber(data, i)
			case c == 't':
				i = scanJSONLiteral(data, i, "true")
			case c == 'f':
				i = scanJSONLiteral(data, i, "false")
			case c == 'n':
				i = scanJSONLiteral(data, i, "null")
			default:
				return false
			}
			if i < 0 {
				return false
			}
		case afterValue:
			if len(stack) == 0 {
				return i == n
			}
			if i >= n {
				return false
			}
			top := stack[len(stack)-1]
			switch data[i] {
			case ',':
				if top == '{' {
					state = wantKey
				} else {
					state = wantValue
				}
			case '}', ']':
				if (top == '{') != (data[i] == '}') {
					return false
				}
				stack = stack[:len(stack)-1]
			default:
				return false
			}
			i++
		case wantKey:
			if i >= n || data[i] != '"' {
				return false
			}
			if i = scanJSONString(data, i+1); i < 0 {
				return false
			}
			if i = skipJSONSpace(data, i); i >= n || data[i] != ':' {
				return false
			}
			i++
			state = wantValue
		}
	}
}

func skipJSONSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// jsonStringStop marks the bytes that end a plain run inside a string: the
// quote, the backslash and the control characters.
var jsonStringStop = [256]bool{'"': true, '\\': true,
	0x00: true, 0x01: true, 0x02: true, 0x03: true, 0x04: true, 0x05: true, 0x06: true, 0x07: true,
	0x08: true, 0x09: true, 0x0a: true, 0x0b: true, 0x0c: true, 0x0d: true, 0x0e: true, 0x0f: true,
	0x10: true, 0x11: true, 0x12: true, 0x13: true, 0x14: true, 0x15: true, 0x16: true, 0x17: true,
	0x18: true, 0x19: true, 0x1a: true, 0x1b: true, 0x1c: true, 0x1d: true, 0x1e: true, 0x1f: true,
}

// scanJSONString scans a string body from i (just past the opening quote)
// and returns the index just past the closing quote, or -1.
func scanJSONString(data []byte, i int) int {
	n := len(data)
	for i < n {
		// Most bytes of a long string need no attention.
		for i < n && !jsonStringStop[data[i]] {
			i++
		}
		if i >= n {
			break
		}
		c := data[i]
		switch {
		case c == '"':
			return i + 1
		case c == '\\':
			if i+1 >= n {
				return -1
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > n {
					return -1
				}
				for _, h := range data[i+2 : i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return -1
					}
				}
				i += 6
			default:
				return -1
			}
		case c < 0x20:
			return -1
		default:
			i++
		}
	}
	return -1
}

// scanJSONNumber scans a number from i and returns the index just past it,
// or -1. What follows the number is the caller's to check.
func scanJSONNumber(data []byte, i int) int {
	n := len(data)
	if data[i] == '-' {
		i++
	}
	switch {
	case i < n && data[i] == '0':
		i++
	case i < n && data[i] >= '1' && data[i] <= '9':
		for i++; i < n && data[i] >= '0' && data[i] <= '9'; i++ {
		}
	default:
		return -1
	}
	if i < n && data[i] == '.' {
		i++
		start := i
		for ; i < n && data[i] >= '0' && data[i] <= '9'; i++ {
		}
		if i == start {
			return -1
		}
	}
	if i < n && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < n && (data[i] == '+' || data[i] == '-') {
			i++
		}
		start := i
		for ; i < n && data[i] >= '0' && data[i] <= '9'; i++ {
		}
		if i == start {
			return -1
		}
	}
	return i
}

func scanJSONLiteral(data []byte, i int, lit string) int {
	if len(data)-i < len(lit) || string(data[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}
