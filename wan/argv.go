package wan

import (
	"slices"
	"strings"
)

// generate.py flags that take no value (argparse store_true).
var storeTrue = []string{
	"--t5_fsdp", "--t5_cpu", "--dit_fsdp", "--use_prompt_extend",
	"--convert_model_dtype", "--replace_flag", "--use_relighting_lora",
	"--enable_tts", "--start_from_ref", "--help",
}

// generate.py flags that take one value (Wan2.2, plus Wan2.1's extras).
var withValue = []string{
	"--task", "--size", "--frame_num", "--ckpt_dir", "--offload_model",
	"--ulysses_size", "--ring_size", "--save_file", "--prompt",
	"--prompt_extend_method", "--prompt_extend_model",
	"--prompt_extend_target_lang", "--base_seed", "--image",
	"--sample_solver", "--sample_steps", "--sample_shift",
	"--sample_guide_scale", "--src_root_path", "--refert_num", "--num_clip",
	"--audio", "--tts_prompt_audio", "--tts_prompt_text", "--tts_text",
	"--pose_video", "--infer_frames", "--src_video", "--src_mask",
	"--src_ref_images", "--first_frame", "--last_frame",
}

// Arg is one flag occurrence among the script's arguments.
type Arg struct {
	// Flag is the flag's full name ("--frame_num"), also when the command
	// spelled an abbreviation that generate.py's argparse would accept.
	Flag string
	// Value is the flag's value; "" for a store_true flag or a missing value.
	Value string
	// HasValue is true when a value was given (inline or as the next token).
	HasValue bool
	// Inline is true for the --flag=value spelling.
	Inline bool
	// Index is the position of the flag token in argv; End is one past its
	// last token.
	Index, End int
}

// Args lists the flag occurrences among the script's arguments, in order.
// Launcher flags (before the script) and tokens after a bare "--" are not
// included.
func Args(argv []string) []Arg {
	l := layoutOf(argv)
	args, _ := scan(argv, l)
	return args
}

// Get returns the value of the last occurrence of flag among the script's
// arguments (argparse: the last one wins) and whether flag is present. A
// present store_true flag reads as ("", true).
func Get(argv []string, flag string) (string, bool) {
	flag = normFlag(flag)
	args := Args(argv)
	for i := len(args) - 1; i >= 0; i-- {
		if args[i].Flag == flag {
			return args[i].Value, true
		}
	}
	return "", false
}

// Has reports whether flag is among the script's arguments.
func Has(argv []string, flag string) bool {
	_, ok := Get(argv, flag)
	return ok
}

// Set returns a copy of argv in which the script's flag has value. The last
// occurrence keeps its place and spelling (--flag value or --flag=value);
// earlier ones are dropped. An absent flag is appended to the script's
// arguments. Launcher flags are never touched.
func Set(argv []string, flag, value string) []string {
	if len(argv) == 0 {
		return nil
	}
	flag = normFlag(flag)
	l := layoutOf(argv)
	args, insert := scan(argv, l)
	last := -1
	for i, a := range args {
		if a.Flag == flag {
			last = i
		}
	}
	if last < 0 {
		return slices.Insert(slices.Clone(argv), insert, flagTokens(flag, value)...)
	}
	out := make([]string, 0, len(argv)+1)
	pos := 0
	for i, a := range args {
		if a.Flag != flag {
			continue
		}
		out = append(out, argv[pos:a.Index]...)
		pos = a.End
		if i != last {
			continue
		}
		name, _, _ := strings.Cut(argv[a.Index], "=")
		if a.Inline || needsInline(value) {
			out = append(out, name+"="+value)
		} else {
			out = append(out, name, value)
		}
	}
	return append(out, argv[pos:]...)
}

// AddFlag returns a copy of argv with the store_true flag among the
// script's arguments; it is appended when absent and left as is otherwise.
func AddFlag(argv []string, flag string) []string {
	if len(argv) == 0 {
		return nil
	}
	flag = normFlag(flag)
	l := layoutOf(argv)
	args, insert := scan(argv, l)
	for _, a := range args {
		if a.Flag == flag {
			return slices.Clone(argv)
		}
	}
	return slices.Insert(slices.Clone(argv), insert, flag)
}

// Remove returns a copy of argv without any occurrence of the script's flag
// and its value.
func Remove(argv []string, flag string) []string {
	if len(argv) == 0 {
		return nil
	}
	flag = normFlag(flag)
	l := layoutOf(argv)
	args, _ := scan(argv, l)
	out := make([]string, 0, len(argv))
	pos := 0
	for _, a := range args {
		if a.Flag != flag {
			continue
		}
		out = append(out, argv[pos:a.Index]...)
		pos = a.End
	}
	return append(out, argv[pos:]...)
}

// ParseBool reads a value the way Wan's str2bool does: yes/true/t/y/1 and
// no/false/f/n/0, in any case. ok is false for anything else (argparse
// would exit with code 2).
func ParseBool(s string) (value, ok bool) {
	switch strings.ToLower(s) {
	case "yes", "true", "t", "y", "1":
		return true, true
	case "no", "false", "f", "n", "0":
		return false, true
	}
	return false, false
}

// KnownFlag reports whether flag is one of generate.py's flags (exact
// spelling), and whether it takes a value.
func KnownFlag(flag string) (known, takesValue bool) {
	flag = normFlag(flag)
	switch {
	case slices.Contains(withValue, flag):
		return true, true
	case slices.Contains(storeTrue, flag):
		return true, false
	}
	return false, false
}

func normFlag(flag string) string {
	if strings.HasPrefix(flag, "-") {
		return flag
	}
	return "--" + flag
}

func flagTokens(flag, value string) []string {
	if needsInline(value) {
		return []string{flag + "=" + value}
	}
	return []string{flag, value}
}

// needsInline reports whether value, written as its own token, would be
// read by argparse as an option.
func needsInline(value string) bool {
	return strings.HasPrefix(value, "-") && !isNegativeNumber(value)
}

// isNegativeNumber mirrors argparse's '^-\d+$|^-\d*\.\d+$'.
func isNegativeNumber(s string) bool {
	if len(s) < 2 || s[0] != '-' {
		return false
	}
	digits, dot := 0, false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot:
			dot = true
			digits = 0
		default:
			return false
		}
	}
	return digits > 0
}

// isOption reports whether a token is read as an option rather than a value
// or a positional argument.
func isOption(tok string) bool {
	return len(tok) > 1 && tok[0] == '-' && !isNegativeNumber(tok)
}

// canonical resolves argparse abbreviations of generate.py's flags; other
// scripts' flags are taken as written.
func canonical(name string, generate bool) string {
	if !generate || !strings.HasPrefix(name, "--") || len(name) < 3 {
		return name
	}
	if slices.Contains(withValue, name) || slices.Contains(storeTrue, name) {
		return name
	}
	match := ""
	for _, list := range [][]string{withValue, storeTrue} {
		for _, f := range list {
			if strings.HasPrefix(f, name) {
				if match != "" {
					return name
				}
				match = f
			}
		}
	}
	if match == "" {
		return name
	}
	return match
}

// takesValue reports whether the flag at argv[i] consumes argv[i+1].
func takesValue(flag string, generate bool, next string) bool {
	if generate {
		if slices.Contains(storeTrue, flag) {
			return false
		}
		if slices.Contains(withValue, flag) {
			return !isOption(next)
		}
	}
	return !isOption(next)
}

// scan walks the script's arguments. insert is where a new flag goes: before
// a bare "--", else at the end.
func scan(argv []string, l layout) (args []Arg, insert int) {
	if len(argv) == 0 {
		return nil, 0
	}
	i := l.script + 1
	for i < len(argv) {
		tok := argv[i]
		if tok == "--" {
			return args, i
		}
		if !isOption(tok) {
			i++
			continue
		}
		name, val, inline := strings.Cut(tok, "=")
		a := Arg{Flag: canonical(name, l.generate), Index: i, End: i + 1}
		switch {
		case inline:
			a.Value, a.HasValue, a.Inline = val, true, true
		case i+1 < len(argv) && takesValue(a.Flag, l.generate, argv[i+1]):
			a.Value, a.HasValue, a.End = argv[i+1], true, i+2
		}
		args = append(args, a)
		i = a.End
	}
	return args, len(argv)
}
