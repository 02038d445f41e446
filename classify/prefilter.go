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

	// Trie, with child table in columns.
	type node struct {
		next []int32
		out  []int32
		fail int32
	}
	newNode := func() node {
		n := node{next: make([]int32, ncol)}
		for i := range n.next {
			n.next[i] = -1
		}
		return n
	}
	nodes := []node{newNode()}
	for i, l := range lits {
		s := int32(0)
		for j := 0; j < len(l); j++ {
			col := a.class[l[j]]
			if nodes[s].next[col] < 0 {
				nodes = append(nodes, newNode())
				nodes[s].next[col] = int32(len(nodes) - 1)
			}
			s = nodes[s].next[col]
		}
		nodes[s].out = append(nodes[s].out, targets[i]...)
		if uint64(len(nodes))*uint64(ncol) > maxTransitions {
			return nil, i, ErrTooLarge
		}
	}

	// Breadth-first: failure links, complete transitions, inherited outputs.
	queue := make([]int32, 0, len(nodes))
	for col := uint32(0); col < ncol; col++ {
		if c := nodes[0].next[col]; c > 0 {
			nodes[c].fail = 0
			queue = append(queue, c)
		} else {
			nodes[0].next[col] = 0
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		nodes[s].out = append(nodes[s].out, nodes[nodes[s].fail].out...)
		for col := uint32(0); col < ncol; col++ {
			c := nodes[s].next[col]
			if c >= 0 {
				nodes[c].fail = nodes[nodes[s].fail].next[col]
				queue = append(queue, c)
			} else {
				nodes[s].next[col] = nodes[nodes[s].fail].next[col]
			}
		}
	}

	a.trans = make([]uint32, len(nodes)*int(ncol))
	a.outIdx = make([]int32, len(nodes)+1)
	for s := range nodes {
		for col := uint32(0); col < ncol; col++ {
			to := nodes[s].next[col]
			v := uint32(to) * ncol
			if len(nodes[to].out) > 0 {
				v |= outBit
			}
			a.trans[uint32(s)*ncol+col] = v
		}
		a.outIdx[s] = int32(len(a.outs))
		a.outs = append(a.outs, dedupeTargets(nodes[s].out)...)
	}
	a.outIdx[len(nodes)] = int32(len(a.outs))
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
