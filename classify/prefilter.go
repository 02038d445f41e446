package classify

// maxTransitions bounds the prefilter's transition table (4 bytes each).
const maxTransitions = 1 << 22

// outBit marks a transition into a state that ends at least one literal.
const outBit = 1 << 31

// automaton is an Aho-Corasick DFA over ASCII-case-folded bytes. One pass over
// a line finds every literal it contains, whatever the number of literals.
type automaton struct {
	class  [256]uint8 // byte -> column; 0 is every byte no literal uses
	ncol   uint32
	trans  []uint32 // (state*ncol + column) -> next state*ncol, | outBit when it has outputs
	outIdx []int32  // outputs of state s are outs[outIdx[s]:outIdx[s+1]]
	outs   []int32  // target ids
}

// buildAutomaton builds the DFA. lits[i] (lowercased) reports targets[i].
// When the table would grow too large it returns ErrTooLarge and the index of
// the literal that made it so.
func buildAutomaton(lits []string, targets [][]int32) (*automaton, int, error) {
	a := &automaton{}
	ncol := uint32(1)
	for _, l := range lits {
		for i := 0; i < len(l); i++ {
			c := l[i]
			if a.class[c] == 0 {
				a.class[c] = uint8(ncol)
				ncol++
			}
		}
	}
	for c := 'A'; c <= 'Z'; c++ {
		a.class[c] = a.class[c+'a'-'A']
	}
	a.ncol = ncol

	// Trie in one flat table: next[s*ncol+col] is the child of state s on
	// column col, or -1. One growing slice instead of a slice per state keeps
	// the build to a handful of allocations.
	total := 1
	for _, l := range lits {
		total += len(l)
	}
	next := make([]int32, ncol, total*int(ncol))
	for i := range next {
		next[i] = -1
	}
	out := make([][]int32, 1, total)
	nstates := int32(1)
	for i, l := range lits {
		s := int32(0)
		for j := 0; j < len(l); j++ {
			col := int32(a.class[l[j]])
			if next[s*int32(ncol)+col] < 0 {
				for k := uint32(0); k < ncol; k++ {
					next = append(next, -1)
				}
				out = append(out, nil)
				next[s*int32(ncol)+col] = nstates
				nstates++
			}
			s = next[s*int32(ncol)+col]
		}
		out[s] = append(out[s], targets[i]...)
		if uint64(nstates)*uint64(ncol) > maxTransitions {
			return nil, i, ErrTooLarge
		}
	}

	// Breadth-first: failure links, complete transitions, inherited outputs.
	fail := make([]int32, nstates)
	queue := make([]int32, 0, nstates)
	for col := uint32(0); col < ncol; col++ {
		if c := next[col]; c > 0 {
			fail[c] = 0
			queue = append(queue, c)
		} else {
			next[col] = 0
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if f := out[fail[s]]; len(f) > 0 {
			out[s] = append(out[s], f...)
		}
		row, frow := next[s*int32(ncol):(s+1)*int32(ncol)], next[fail[s]*int32(ncol):(fail[s]+1)*int32(ncol)]
		for col := range row {
			if c := row[col]; c >= 0 {
				fail[c] = frow[col]
				queue = append(queue, c)
			} else {
				row[col] = frow[col]
			}
		}
	}

	a.trans = make([]uint32, int(nstates)*int(ncol))
	a.outIdx = make([]int32, nstates+1)
	for s := int32(0); s < nstates; s++ {
		for col := uint32(0); col < ncol; col++ {
			to := next[uint32(s)*ncol+col]
			v := uint32(to) * ncol
			if len(out[to]) > 0 {
				v |= outBit
			}
			a.trans[uint32(s)*ncol+col] = v
		}
		a.outIdx[s] = int32(len(a.outs))
		a.outs = append(a.outs, dedupeTargets(out[s])...)
	}
	a.outIdx[nstates] = int32(len(a.outs))
	return a, 0, nil
}

func dedupeTargets(ts []int32) []int32 {
	var out []int32
	for _, t := range ts {
		seen := false
		for _, o := range out {
			if o == t {
				seen = true
				break
			}
		}
		if !seen {
			out = append(out, t)
		}
	}
	return out
}
