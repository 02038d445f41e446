package classify

import (
	"regexp/syntax"
	"slices"
	"unicode"
	"unicode/utf8"
)

const (
	// minLiteralLen is the shortest literal derived from a pattern: shorter
	// ones would wake the rule on nearly every line.
	minLiteralLen = 3
	// maxLiteralSet bounds the sets of strings tracked while deriving.
	maxLiteralSet = 64
	// maxClassRunes is the largest character class expanded into strings.
	maxClassRunes = 10
)

// litInfo describes what a regexp node can match, for the prefilter. All
// strings are ASCII-lowercased, since the prefilter folds ASCII case.
type litInfo struct {
	// exact lists every string the node can match; nil when unknown or too many.
	exact []string
	// factors is a set such that every match contains one of its strings; nil when none is known.
	factors []string
}

// deriveLiterals returns a set of strings such that every line the regexp
// matches contains at least one of them (ASCII case ignored), or nil when no
// such set has strings of at least minLiteralLen bytes.
func deriveLiterals(re *syntax.Regexp) []string {
	best := analyze(re.Simplify()).best()
	if best == nil || minLen(best) < minLiteralLen {
		return nil
	}
	return best
}

func analyze(re *syntax.Regexp) litInfo {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return litInfo{exact: []string{""}}
	case syntax.OpLiteral:
		fold := re.Flags&syntax.FoldCase != 0
		parts := make([]litInfo, 0, len(re.Rune))
		for _, r := range re.Rune {
			parts = append(parts, litInfo{exact: runeStrings([]rune{r}, fold)})
		}
		return concatInfo(parts)
	case syntax.OpCharClass:
		n := 0
		var runes []rune
		for i := 0; i+1 < len(re.Rune); i += 2 {
			n += int(re.Rune[i+1]-re.Rune[i]) + 1
			if n > maxClassRunes {
				return litInfo{}
			}
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				runes = append(runes, r)
			}
		}
		if n == 0 {
			return litInfo{}
		}
		return litInfo{exact: runeStrings(runes, false)}
	case syntax.OpCapture:
		return analyze(re.Sub[0])
	case syntax.OpQuest:
		sub := analyze(re.Sub[0])
		if sub.exact == nil || len(sub.exact)+1 > maxLiteralSet {
			return litInfo{}
		}
		return litInfo{exact: dedupe(append([]string{""}, sub.exact...))}
	case syntax.OpPlus:
		return litInfo{factors: analyze(re.Sub[0]).best()}
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return litInfo{factors: analyze(re.Sub[0]).best()}
		}
		return litInfo{}
	case syntax.OpConcat:
		parts := make([]litInfo, 0, len(re.Sub))
		for _, sub := range re.Sub {
			parts = append(parts, analyze(sub))
		}
		return concatInfo(parts)
	case syntax.OpAlternate:
		return alternateInfo(re.Sub)
	}
	// OpNoMatch, OpAnyChar, OpAnyCharNotNL, OpStar and anything new: nothing known.
	return litInfo{}
}

// runeStrings returns the UTF-8 strings of runes (and, with fold, of every
// case variant), ASCII-lowercased and deduplicated. It returns nil when a rune
// cannot be found by the prefilter: utf8.RuneError also matches invalid bytes.
func runeStrings(runes []rune, fold bool) []string {
	var out []string
	for _, r := range runes {
		if r == utf8.RuneError || r > unicode.MaxRune || (r >= 0xD800 && r <= 0xDFFF) {
			return nil
		}
		out = append(out, lowerASCII(string(r)))
		if fold {
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				out = append(out, lowerASCII(string(f)))
			}
		}
	}
	return dedupe(out)
}

func concatInfo(parts []litInfo) litInfo {
	var cands [][]string
	var run []string
	inRun, allExact := false, true
	for _, p := range parts {
		switch {
		case p.exact != nil && !inRun:
			run, inRun = p.exact, true
		case p.exact != nil && len(run)*len(p.exact) <= maxLiteralSet:
			run = cross(run, p.exact)
		case p.exact != nil:
			cands = append(cands, run)
			run, allExact = p.exact, false
		default:
			allExact = false
			if inRun {
				cands = append(cands, run)
				run, inRun = nil, false
			}
			if p.factors != nil {
				cands = append(cands, p.factors)
			}
		}
	}
	if inRun {
		cands = append(cands, run)
	}
	var out litInfo
	if allExact {
		if !inRun {
			run = []string{""}
		}
		out.exact = run
	}
	for _, c := range cands {
		out.factors = better(out.factors, c)
	}
	return out
}

func alternateInfo(subs []*syntax.Regexp) litInfo {
	infos := make([]litInfo, len(subs))
	exactOK := true
	n := 0
	for i, sub := range subs {
		infos[i] = analyze(sub)
		if infos[i].exact == nil {
			exactOK = false
		}
		n += len(infos[i].exact)
	}
	var out litInfo
	if exactOK && n <= maxLiteralSet {
		for _, in := range infos {
			out.exact = append(out.exact, in.exact...)
		}
		out.exact = dedupe(out.exact)
	}
	var union []string
	for _, in := range infos {
		b := in.best()
		if b == nil {
			return out
		}
		union = append(union, b...)
	}
	if union = dedupe(union); len(union) <= maxLiteralSet {
		out.factors = union
	}
	return out
}

// best returns the better of the two sets in, or nil.
func (in litInfo) best() []string { return better(in.factors, in.exact) }

// better prefers the set whose shortest string is longer, then the smaller set.
func better(a, b []string) []string {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	la, lb := minLen(a), minLen(b)
	if la != lb {
		if la > lb {
			return a
		}
		return b
	}
	if len(b) < len(a) {
		return b
	}
	return a
}

func minLen(set []string) int {
	m := -1
	for _, s := range set {
		if m < 0 || len(s) < m {
			m = len(s)
		}
	}
	return max(m, 0)
}

func cross(a, b []string) []string {
	out := make([]string, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			out = append(out, x+y)
		}
	}
	return dedupe(out)
}

func dedupe(set []string) []string {
	if set == nil {
		return nil
	}
	out := slices.Clone(set)
	slices.Sort(out)
	return slices.Compact(out)
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
