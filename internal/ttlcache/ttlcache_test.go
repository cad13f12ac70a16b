package ttlcache

import (
	"testing"
	"time"
)

func TestBoundedAndExpiring(t *testing.T) {
	c := New[int, int](10)
	now := time.Now()
	for i := 0; i < 1000; i++ {
		c.Put(i, i, now.Add(time.Minute), now)
	}
	if n := c.Len(); n != 10 {
		t.Fatalf("cache holds %d entries, bound is 10", n)
	}
	c2 := New[string, string](4)
	c2.Put("a", "1", now.Add(time.Second), now)
	if v, ok := c2.Get("a", now); !ok || v != "1" {
		t.Fatalf("fresh entry: %q %v", v, ok)
	}
	if _, ok := c2.Get("a", now.Add(2*time.Second)); ok {
		t.Fatal("expired entry returned")
	}
	c2.Put("b", "2", now.Add(time.Hour), now)
	if n := c2.DeleteFunc(func(k, v string) bool { return k == "b" }); n != 1 {
		t.Fatalf("DeleteFunc removed %d", n)
	}
	c2.Put("c", "3", now.Add(time.Hour), now)
	c2.Delete("c")
	if _, ok := c2.Get("c", now); ok {
		t.Fatal("deleted entry returned")
	}
}
