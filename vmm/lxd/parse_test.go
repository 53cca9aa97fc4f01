package lxd

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBitRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		kibs uint64
	}{
		{bitRate(1000), 1000},
		{"8192bit", 1},
		{"8192kbit", 1000},
		{"1Gbit", 122070},
		{"garbage", 0},
		{"", 0},
	} {
		assert.Equal(t, tc.kibs, parseBitRate(tc.in), tc.in)
	}
}

func TestFrameRoundTrip(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, writeFrame(&b, 0x9, []byte("ping!")))
	op, payload, fin, err := readFrame(bufio.NewReader(&b))
	require.NoError(t, err)
	assert.Equal(t, byte(0x9), op)
	assert.True(t, fin)
	assert.Equal(t, "ping!", string(payload), "masking is undone on read")
	require.Error(t, writeFrame(&b, 0x9, make([]byte, 126)))
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'})
	f.Add([]byte{0x81, 0x7E, 0x00, 0x02, 'h', 'i'})
	f.Add([]byte{0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		op, payload, _, err := readFrame(bufio.NewReader(bytes.NewReader(b)))
		if err == nil {
			assert.LessOrEqual(t, len(payload), len(b))
			assert.LessOrEqual(t, op, byte(0x0F))
		}
	})
}

func FuzzParseBitRate(f *testing.F) {
	f.Add("10Mbit")
	f.Add("18446744073709551615Gbit")
	f.Fuzz(func(t *testing.T, s string) { _ = parseBitRate(s) })
}
