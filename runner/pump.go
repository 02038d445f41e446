package runner

import (
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// chunkSize is the most one read of the child's output takes.
	chunkSize = 128 << 10
	// queueLen is how many chunks may wait for the scanner; past that,
	// chunks skip it. With chunkSize it bounds the memory in flight.
	queueLen = 16
)

var chunkPool = sync.Pool{New: func() any {
	b := make([]byte, chunkSize)
	return &b
}}

// chunk is one read from one stream on its way to the scanner.
type chunk struct {
	stream Stream
	buf    *[]byte
	n      int
	gap    bool // chunks of this stream skipped the scanner just before this one
	eof    bool // the stream ended; buf is nil
}

// output copies the child's stdout and stderr through to their writers and
// feeds a single scanner goroutine that splits lines for the sink and the
// tail. Each pump writes a read through before anything looks at it, and
// hands it on without blocking, so neither the scanner nor the sink can slow
// the child.
type output struct {
	queue   chan chunk
	dropped atomic.Int64 // chunks that skipped the scanner
	last    atomic.Int64 // unix nanoseconds of the last read with data
	tail    tail
	split   [2]*LineSplitter // stdout, stderr; owned by the scanner
	scanned int              // bytes of lines handed to the sink; owned by the scanner
	done    chan struct{}    // closed when both streams ended and the scanner flushed

	files [2]*os.File // the read ends, stdout and stderr
	// Set by stopAfter once the child has exited: the pumps then read
	// with a deadline of idle from each read, and none past stopAt.
	stopAt atomic.Int64 // unix nanoseconds; 0 while the child runs
	idle   atomic.Int64 // nanoseconds
}

func newOutput(start time.Time, tailLines int) *output {
	if tailLines <= 0 {
		tailLines = DefaultTailLines
	}
	o := &output{
		queue: make(chan chunk, queueLen),
		tail:  tail{lines: make([][]byte, tailLines)},
		done:  make(chan struct{}),
	}
	o.last.Store(start.UnixNano())
	return o
}

// start runs the two pumps and the scanner. Each pump closes its reader when
// it stops: at end of file or when the reader's deadline passes.
func (o *output) start(outR, errR *os.File, stdout, stderr io.Writer, sink LineSink, maxLine int) {
	o.files = [2]*os.File{outR, errR}
	for i := range o.split {
		s := Stream(i + 1)
		o.split[i] = NewLineSplitter(maxLine, func(line []byte) {
			o.scanned += len(line) + 1
			if sink != nil {
				sink.Line(s, line)
			}
			o.tail.add(line)
		})
	}
	go o.scan()
	go o.pump(Stdout, outR, stdout)
	go o.pump(Stderr, errR, stderr)
}

func (o *output) pump(s Stream, r *os.File, w io.Writer) {
	b := chunkPool.Get().(*[]byte)
	// held is the newest read that found the queue full, kept so the end
	// of a stream (where tracebacks are) reaches the scanner even when the
	// chunks before it could not.
	var held *[]byte
	heldN := 0
	gap := false
	for {
		if stop := o.stopAt.Load(); stop != 0 {
			// An error here means r is closed; Read will say so.
			_ = r.SetReadDeadline(time.Unix(0, min(time.Now().UnixNano()+o.idle.Load(), stop)))
		}
		n, err := r.Read(*b)
		if n > 0 {
			o.last.Store(time.Now().UnixNano())
			if w != nil {
				if _, werr := w.Write((*b)[:n]); werr != nil {
					// Our side is broken; keep draining so the child is
					// never blocked on a full pipe.
					w = nil
				}
			}
			select {
			case o.queue <- chunk{stream: s, buf: b, n: n, gap: gap}:
				gap = false
				b = chunkPool.Get().(*[]byte)
				if held != nil {
					chunkPool.Put(held) // older than what was just sent
					held = nil
				}
			default:
				o.dropped.Add(1)
				gap = true
				if held != nil {
					chunkPool.Put(held)
				}
				held, heldN = b, n
				b = chunkPool.Get().(*[]byte)
			}
		}
		if err != nil {
			break
		}
	}
	chunkPool.Put(b)
	_ = r.Close() // a read end: nothing was written through it to lose
	if held != nil {
		// It skipped the queue once (counted); now it waits for room.
		o.queue <- chunk{stream: s, buf: held, n: heldN, gap: true}
		gap = false
	}
	o.queue <- chunk{stream: s, gap: gap, eof: true}
}

// stopAfter tells the pumps that the child exited at now: from then on a
// pump stops when its stream has been idle for idle, or at now+limit. Time
// a pump spends writing does not count, so bytes already in the pipe are not
// lost to a slow writer.
func (o *output) stopAfter(now time.Time, idle, limit time.Duration) {
	o.idle.Store(int64(idle))
	o.stopAt.Store(now.Add(limit).UnixNano())
	// Wake a pump that is waiting in Read; one that is not will set its
	// own deadline before its next Read. Errors mean the pump already
	// closed its end.
	for _, f := range o.files {
		_ = f.SetReadDeadline(now.Add(min(idle, limit)))
	}
}

// scanRate and scanBurst bound how fast the scanner reads: a token bucket
// of bytes. A child that floods its output (far beyond anything Wan2.2
// prints) would otherwise have the scanner take a whole core from the child
// and its reader; past the budget, chunks skip the scanner, except the
// newest of each stream, which is scanned when budget returns or at the end
// of the stream, so the last lines (where tracebacks are) are always seen.
const (
	scanRate  = 64 << 20 // bytes per second
	scanBurst = 16 << 20
)

func (o *output) scan() {
	defer close(o.done)
	var held [2]*chunk // newest chunk per stream waiting for budget
	tokens, last := float64(scanBurst), time.Now()
	feed := func(c *chunk) {
		sp := o.split[c.stream-1]
		if c.gap {
			sp.Reset()
		}
		// The cost is what the sink and tail were handed (a line cut to
		// MaxLine costs MaxLine, the bytes skipped after the cut almost
		// nothing) plus a little for splitting.
		before := o.scanned
		_, _ = sp.Write((*c.buf)[:c.n]) // never fails
		chunkPool.Put(c.buf)
		tokens -= float64(o.scanned-before) + float64(c.n)/16
	}
	for open := len(o.split); open > 0; {
		c := <-o.queue
		i := c.stream - 1
		if c.eof {
			if h := held[i]; h != nil {
				feed(h)
				held[i] = nil
			}
			o.split[i].Flush()
			open--
			continue
		}
		now := time.Now()
		tokens = min(scanBurst, tokens+now.Sub(last).Seconds()*scanRate)
		last = now
		if h := held[i]; h != nil {
			if tokens < float64(h.n+c.n) {
				// Still over budget: the held chunk gives way to the newer one.
				chunkPool.Put(h.buf)
				o.dropped.Add(1)
				c.gap = true
				held[i] = &c
				continue
			}
			feed(h)
			held[i] = nil
		} else if tokens < float64(c.n) {
			held[i] = &c
			continue
		}
		feed(&c)
	}
}

// tail is a ring of the last lines, both streams together. Slots keep their
// buffers, so a steady stream of lines allocates nothing.
type tail struct {
	mu    sync.Mutex
	lines [][]byte
	next  int
	n     int
}

func (t *tail) add(line []byte) {
	t.mu.Lock()
	t.lines[t.next] = append(t.lines[t.next][:0], line...)
	t.next = (t.next + 1) % len(t.lines)
	t.n = min(t.n+1, len(t.lines))
	t.mu.Unlock()
}

func (t *tail) get() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, t.n)
	first := (t.next - t.n + len(t.lines)) % len(t.lines)
	for i := range t.n {
		out = append(out, string(t.lines[(first+i)%len(t.lines)]))
	}
	return out
}
