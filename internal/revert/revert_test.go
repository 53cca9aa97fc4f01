package revert

import (
	"errors"
	"testing"
)

func TestFailRunsUndoInReverseOrder(t *testing.T) {
	var got []int
	r := New()
	for i := range 3 {
		r.Add(func() { got = append(got, i) })
	}
	if err := r.Fail(); err != nil {
		t.Fatalf("Fail() = %v", err)
	}
	if len(got) != 3 || got[0] != 2 || got[1] != 1 || got[2] != 0 {
		t.Fatalf("undo order = %v, want [2 1 0]", got)
	}
	if err := r.Fail(); err != nil || len(got) != 3 {
		t.Fatalf("second Fail ran undos again: %v, %v", got, err)
	}
}

func TestSuccessDisarms(t *testing.T) {
	ran := false
	r := New()
	r.Add(func() { ran = true })
	r.Success()
	_ = r.Fail()
	if ran {
		t.Fatal("undo ran after Success")
	}
}

func TestFailCollectsErrorsAndContinues(t *testing.T) {
	e1, e2 := errors.New("one"), errors.New("two")
	last := false
	r := New()
	r.Add(func() { last = true })
	r.AddE(func() error { return e1 })
	r.AddE(func() error { return e2 })
	err := r.Fail()
	if !errors.Is(err, e1) || !errors.Is(err, e2) {
		t.Fatalf("Fail() = %v, want both errors", err)
	}
	if !last {
		t.Fatal("a failing undo stopped the remaining ones")
	}
}

func TestCloneTakesOverUndos(t *testing.T) {
	n := 0
	r := New()
	r.Add(func() { n++ })
	c := r.Clone()
	_ = r.Fail()
	if n != 0 {
		t.Fatal("original still ran the handed-over undo")
	}
	_ = c.Fail()
	if n != 1 {
		t.Fatalf("clone ran %d undos, want 1", n)
	}
}
