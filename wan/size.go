package wan

import (
	"strconv"
	"strings"
)

// Orientation of a width*height size.
type Orientation int

// Orientations.
const (
	Landscape Orientation = iota + 1
	Portrait
	Square
)

// minSizeCut is the least share of pixels a size step must remove. Smaller
// steps (1280*720 -> 1280*704 is 2%) would cost a whole relaunch for no
// memory to speak of.
const minSizeCut = 0.10

// ParseSize reads "width*height".
func ParseSize(s string) (w, h int, ok bool) {
	a, b, found := strings.Cut(s, "*")
	if !found {
		return 0, 0, false
	}
	w, err1 := strconv.Atoi(a)
	h, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || w <= 0 || h <= 0 {
		return 0, 0, false
	}
	return w, h, true
}

// OrientationOf returns the orientation of a size; 0 when it does not parse.
func OrientationOf(size string) Orientation {
	w, h, ok := ParseSize(size)
	switch {
	case !ok:
		return 0
	case w > h:
		return Landscape
	case w < h:
		return Portrait
	}
	return Square
}

// OrientLike returns size turned to the orientation of like (832*480 with a
// portrait like is 480*832). Sizes that do not parse come back unchanged.
func OrientLike(size, like string) string {
	w, h, ok := ParseSize(size)
	o := OrientationOf(like)
	if !ok || o == 0 || o == Square || OrientationOf(size) == o || w == h {
		return size
	}
	return strconv.Itoa(h) + "*" + strconv.Itoa(w)
}

func area(size string) int {
	w, h, _ := ParseSize(size)
	return w * h
}

// SmallerSize returns the next smaller size the task allows with the same
// orientation as size, skipping steps that remove less than a tenth of the
// pixels: 1280*720 -> 832*480 and 720*1280 -> 480*832 for the A14B tasks,
// 1280*720 -> 1024*704 -> 832*480 for s2v. ok is false when there is none
// (ti2v-5B, animate-14B, already the smallest, an unknown task).
func SmallerSize(task, size string) (string, bool) {
	t, ok := lookup(task)
	o := OrientationOf(size)
	if !ok || o == 0 {
		return "", false
	}
	limit := float64(area(size)) * (1 - minSizeCut)
	best, bestArea := "", 0
	for _, s := range t.Sizes {
		a := area(s)
		if OrientationOf(s) == o && float64(a) <= limit && a > bestArea {
			best, bestArea = s, a
		}
	}
	return best, best != ""
}

// SmallerFrames returns the next value below frames in the task's frame
// steps (81 -> 49 -> 33 -> 17; ti2v-5B 121 -> 81 -> 49 -> 33; s2v
// --infer_frames 80 -> 48). A value off the steps goes to the next step
// below it, so the result always follows the task's frame rule. ok is false
// at the last step or for an unknown task.
func SmallerFrames(task string, frames int) (int, bool) {
	t, ok := lookup(task)
	if !ok {
		return 0, false
	}
	for _, n := range t.FrameSteps {
		if n < frames {
			return n, true
		}
	}
	return 0, false
}

// Tokens is the DiT sequence length for a task, size and frame count:
// latent frames (frames-1)/4+1 times (height/stride/2) times
// (width/stride/2), with the VAE stride 8 (Wan2.1 VAE) or 16 (Wan2.2 VAE).
// A14B 1280*720×81 is 75,600; ti2v-5B 1280*704×121 is 27,280. ok is false
// for an unknown task, a size that does not parse or frames < 1.
func Tokens(task, size string, frames int) (int, bool) {
	t, ok := lookup(task)
	w, h, okSize := ParseSize(size)
	if !ok || !okSize || frames < 1 {
		return 0, false
	}
	lat := (frames-1)/4 + 1
	return lat * (h / t.VAEStride / 2) * (w / t.VAEStride / 2), true
}
