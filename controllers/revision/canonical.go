package revision

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
)

// The canonical form is defined as: json.Marshal the template, json.Unmarshal the result into a
// map[string]any, delete Herald's labels and annotations under metadata, prune nulls, empty
// objects and empty lists (an emptied list element becomes {} if it was an object, null
// otherwise), json.Marshal again. That definition is what the golden tests pin, and the
// reference implementation in the tests does exactly that.
//
// The code below produces the same bytes in one pass over the first json.Marshal's output,
// without building maps or interface values. What it must reproduce of the round trip:
//   - object keys sorted by their decoded string (encoding/json sorts map keys), a key that
//     occurs twice (possible inside managedFields' fieldsV1, or for map keys that differ only in
//     invalid UTF-8) keeping its last value, as decoding into a map does;
//   - strings re-encoded from their decoded value: identical to the input except where the
//     input is not in encoding/json's own escaping (raw JSON from a json.Marshaler, invalid UTF-8
//     turned into \ufffd by the first encoding and written as the literal rune by the second);
//   - numbers round-tripped through float64 (integers beyond 2^53 lose digits, large ones get
//     an exponent), and an out-of-range number is an error;
//   - the decoder's nesting limit.

// maxNestingDepth is encoding/json's limit on nested arrays and objects when decoding.
const maxNestingDepth = 10000

var errMalformed = errors.New("malformed JSON")

// value is a pruned JSON value: a scalar (raw holds its canonical encoding) or an object or
// array whose members or elements are canonicaliser.members[start:start+n] or
// canonicaliser.elems[start:start+n].
type value struct {
	kind     byte
	raw      []byte
	start, n int32
}

const (
	kindScalar byte = iota
	kindObject
	kindArray
)

var (
	emptyObject = value{kind: kindScalar, raw: []byte("{}")}
	nullValue   = value{kind: kindScalar, raw: []byte("null")}
)

type member struct {
	key  []byte // decoded, for sorting
	enc  []byte // canonical encoding, quotes included
	val  value
	keep bool
}

// objectContext tells parseObject where it is, for dropping Herald's own metadata.
type objectContext byte

const (
	ctxOther objectContext = iota
	ctxRoot
	ctxMetadata
	ctxSpec
	ctxHeraldKeyed // metadata.labels, metadata.annotations or spec.nodeSelector
)

// canonicaliser holds the buffers of one canonicalisation; they are pooled.
type canonicaliser struct {
	marshalled bytes.Buffer
	enc        *json.Encoder
	in         []byte
	pos        int
	depth      int
	scratch    []byte // append-only during one run: slices of it stay valid
	stack      []member
	members    []member
	estack     []value
	elems      []value
	out        []byte
}

var canonicalisers = sync.Pool{New: func() any {
	c := &canonicaliser{}
	c.enc = json.NewEncoder(&c.marshalled)
	return c
}}

// maxPooled keeps the buffers of an unusually large template out of the pool.
const maxPooled = 1 << 20

func getCanonicaliser() *canonicaliser { return canonicalisers.Get().(*canonicaliser) }

func (c *canonicaliser) release() {
	if c.marshalled.Cap() > maxPooled || cap(c.out) > maxPooled || cap(c.scratch) > maxPooled {
		return
	}
	c.in = nil
	// Drop references to this run's byte slices.
	clear(c.stack)
	clear(c.members)
	clear(c.estack)
	clear(c.elems)
	canonicalisers.Put(c)
}

// canonicalTemplate returns the JSON form of tmpl without Herald's own metadata, without nulls
// and without empty objects or lists, with object keys sorted.
func canonicalTemplate(tmpl *corev1.PodTemplateSpec) ([]byte, error) {
	c := getCanonicaliser()
	defer c.release()
	out, err := c.canonical(tmpl)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(out), nil
}

// canonical returns the canonical form of tmpl in c.out.
func (c *canonicaliser) canonical(tmpl *corev1.PodTemplateSpec) ([]byte, error) {
	c.out = c.out[:0]
	if tmpl == nil {
		c.out = append(c.out, "{}"...)
		return c.out, nil
	}
	c.marshalled.Reset()
	if err := c.enc.Encode(tmpl); err != nil {
		return nil, err
	}
	c.in = c.marshalled.Bytes()
	c.pos, c.depth = 0, 0
	c.scratch, c.stack, c.members, c.estack, c.elems = c.scratch[:0], c.stack[:0], c.members[:0], c.estack[:0], c.elems[:0]

	c.skipSpace()
	if c.pos >= len(c.in) || c.in[c.pos] != '{' {
		return nil, errMalformed
	}
	root, keep, err := c.parseObject(ctxRoot)
	if err != nil {
		return nil, err
	}
	if c.skipSpace(); c.pos != len(c.in) {
		return nil, errMalformed
	}
	if !keep {
		root = emptyObject
	}
	c.out = c.write(c.out, root)
	return c.out, nil
}

func (c *canonicaliser) skipSpace() {
	for c.pos < len(c.in) {
		switch c.in[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

// parseValue parses the value at c.pos. keep is false for a value the pruning drops (null, an
// empty object or list, an object or list emptied by pruning); wasObject tells whether it was
// an object, which a list puts back as {}.
func (c *canonicaliser) parseValue(ctx objectContext) (v value, keep, wasObject bool, err error) {
	if c.pos >= len(c.in) {
		return value{}, false, false, errMalformed
	}
	switch b := c.in[c.pos]; {
	case b == '{':
		v, keep, err = c.parseObject(ctx)
		return v, keep, true, err
	case b == '[':
		v, keep, err = c.parseArray()
		return v, keep, false, err
	case b == '"':
		_, enc, err := c.parseString()
		return value{kind: kindScalar, raw: enc}, true, false, err
	case b == 't':
		return c.literal("true")
	case b == 'f':
		return c.literal("false")
	case b == 'n':
		_, _, _, err := c.literal("null")
		return value{}, false, false, err
	case b == '-' || ('0' <= b && b <= '9'):
		raw, err := c.parseNumber()
		return value{kind: kindScalar, raw: raw}, true, false, err
	default:
		return value{}, false, false, errMalformed
	}
}

func (c *canonicaliser) literal(lit string) (value, bool, bool, error) {
	end := c.pos + len(lit)
	if end > len(c.in) || string(c.in[c.pos:end]) != lit {
		return value{}, false, false, errMalformed
	}
	v := value{kind: kindScalar, raw: c.in[c.pos:end]}
	c.pos = end
	return v, true, false, nil
}

func (c *canonicaliser) enter() error {
	c.depth++
	if c.depth > maxNestingDepth {
		return errors.New("exceeded max depth")
	}
	return nil
}

func (c *canonicaliser) parseObject(ctx objectContext) (value, bool, error) {
	if err := c.enter(); err != nil {
		return value{}, false, err
	}
	c.pos++ // '{'
	base := len(c.stack)
	c.skipSpace()
	if c.pos < len(c.in) && c.in[c.pos] == '}' {
		c.pos++
	} else {
		for {
			if c.pos >= len(c.in) || c.in[c.pos] != '"' {
				return value{}, false, errMalformed
			}
			key, enc, err := c.parseString()
			if err != nil {
				return value{}, false, err
			}
			c.skipSpace()
			if c.pos >= len(c.in) || c.in[c.pos] != ':' {
				return value{}, false, errMalformed
			}
			c.pos++
			c.skipSpace()
			v, keep, _, err := c.parseValue(childContext(ctx, key))
			if err != nil {
				return value{}, false, err
			}
			c.stack = append(c.stack, member{key: key, enc: enc, val: v, keep: keep})
			c.skipSpace()
			if c.pos >= len(c.in) {
				return value{}, false, errMalformed
			}
			if c.in[c.pos] == ',' {
				c.pos++
				c.skipSpace()
				continue
			}
			if c.in[c.pos] != '}' {
				return value{}, false, errMalformed
			}
			c.pos++
			break
		}
	}
	c.depth--

	seg := c.stack[base:]
	if len(seg) > 1 && !sortedUnique(seg) {
		// Stable, so that among equal keys the last one read stays last.
		slices.SortStableFunc(seg, func(a, b member) int { return bytes.Compare(a.key, b.key) })
	}
	start := len(c.members)
	for i := range seg {
		m := &seg[i]
		if i+1 < len(seg) && bytes.Equal(m.key, seg[i+1].key) {
			continue // a later duplicate wins, as in a map
		}
		if !m.keep || (ctx == ctxHeraldKeyed && bytes.HasPrefix(m.key, prefixBytes)) {
			continue
		}
		c.members = append(c.members, *m)
	}
	clear(seg)
	c.stack = c.stack[:base]
	n := len(c.members) - start
	return value{kind: kindObject, start: int32(start), n: int32(n)}, n > 0, nil
}

var prefixBytes = []byte(Prefix)

func sortedUnique(seg []member) bool {
	for i := 1; i < len(seg); i++ {
		if bytes.Compare(seg[i-1].key, seg[i].key) >= 0 {
			return false
		}
	}
	return true
}

func childContext(ctx objectContext, key []byte) objectContext {
	switch ctx {
	case ctxRoot:
		switch string(key) {
		case "metadata":
			return ctxMetadata
		case "spec":
			return ctxSpec
		}
	case ctxSpec:
		if string(key) == "nodeSelector" {
			return ctxHeraldKeyed
		}
	case ctxMetadata:
		if string(key) == "labels" || string(key) == "annotations" {
			return ctxHeraldKeyed
		}
	}
	return ctxOther
}

func (c *canonicaliser) parseArray() (value, bool, error) {
	if err := c.enter(); err != nil {
		return value{}, false, err
	}
	c.pos++ // '['
	base := len(c.estack)
	c.skipSpace()
	if c.pos < len(c.in) && c.in[c.pos] == ']' {
		c.pos++
	} else {
		for {
			v, keep, wasObject, err := c.parseValue(ctxOther)
			if err != nil {
				return value{}, false, err
			}
			// Positions in a list carry meaning: an element is emptied, never dropped.
			if !keep {
				if wasObject {
					v = emptyObject
				} else {
					v = nullValue
				}
			}
			c.estack = append(c.estack, v)
			c.skipSpace()
			if c.pos >= len(c.in) {
				return value{}, false, errMalformed
			}
			if c.in[c.pos] == ',' {
				c.pos++
				c.skipSpace()
				continue
			}
			if c.in[c.pos] != ']' {
				return value{}, false, errMalformed
			}
			c.pos++
			break
		}
	}
	c.depth--
	start := len(c.elems)
	c.elems = append(c.elems, c.estack[base:]...)
	clear(c.estack[base:])
	c.estack = c.estack[:base]
	n := len(c.elems) - start
	return value{kind: kindArray, start: int32(start), n: int32(n)}, n > 0, nil
}

// parseString reads the string at c.pos and returns its decoded value and its canonical
// encoding (what encoding/json writes for the decoded value).
func (c *canonicaliser) parseString() (decoded, enc []byte, err error) {
	in := c.in
	open := c.pos
	clean := true
	i := open + 1
	for {
		if i >= len(in) {
			return nil, nil, errMalformed
		}
		b := in[i]
		if b < utf8.RuneSelf {
			if b == '"' {
				break
			}
			if !htmlSafe[b] {
				clean = false
				if b == '\\' {
					i++ // the escaped byte cannot end the string
				}
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(in[i:])
		if (r == utf8.RuneError && size == 1) || r == '\u2028' || r == '\u2029' {
			clean = false
		}
		i += size
	}
	c.pos = i + 1
	if clean {
		// Decoding changes nothing and encoding/json would write it as it is.
		return in[open+1 : i], in[open : i+1], nil
	}
	start := len(c.scratch)
	c.scratch, err = appendUnquoted(c.scratch, in[open+1:i])
	if err != nil {
		return nil, nil, err
	}
	mid := len(c.scratch)
	c.scratch = appendString(c.scratch, c.scratch[start:mid])
	return c.scratch[start:mid:mid], c.scratch[mid:len(c.scratch):len(c.scratch)], nil
}

// htmlSafe is encoding/json's htmlSafeSet: the ASCII bytes it writes unescaped.
var htmlSafe = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
	}
	return t
}()

// appendUnquoted appends the decoded form of the contents of a JSON string, as encoding/json
// decodes it: invalid UTF-8 and unpaired surrogates become U+FFFD.
func appendUnquoted(dst, s []byte) ([]byte, error) {
	for r := 0; r < len(s); {
		switch b := s[r]; {
		case b == '\\':
			if r+1 >= len(s) {
				return nil, errMalformed
			}
			switch s[r+1] {
			case '"', '\\', '/', '\'':
				dst = append(dst, s[r+1])
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				rr := getu4(s[r:])
				if rr < 0 {
					return nil, errMalformed
				}
				r += 6
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, getu4(s[r:])); dec != utf8.RuneError {
						r += 6
						dst = utf8.AppendRune(dst, dec)
						continue
					}
					rr = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, rr)
				continue
			default:
				return nil, errMalformed
			}
			r += 2
		case b == '"' || b < ' ':
			return nil, errMalformed
		case b < utf8.RuneSelf:
			dst = append(dst, b)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			dst = utf8.AppendRune(dst, rr)
			r += size
		}
	}
	return dst, nil
}

// getu4 decodes \uXXXX at the start of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

const hexDigits = "0123456789abcdef"

// appendString appends s as encoding/json encodes a string with HTML escaping on.
func appendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if htmlSafe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// parseNumber reads the number at c.pos and returns what encoding/json writes for it after
// decoding it into a float64.
func (c *canonicaliser) parseNumber() ([]byte, error) {
	in := c.in
	start := c.pos
	i := start
	if in[i] == '-' {
		i++
	}
	digits := 0
	for i < len(in) && '0' <= in[i] && in[i] <= '9' {
		i++
		digits++
	}
	integer := true
	for i < len(in) {
		switch in[i] {
		case '.', 'e', 'E', '+', '-':
			integer = false
		default:
			if in[i] < '0' || in[i] > '9' {
				goto end
			}
		}
		i++
	}
end:
	c.pos = i
	tok := in[start:i]
	if digits == 0 {
		return nil, errMalformed
	}
	// An integer of up to 15 digits is exact in a float64 and formatted back as it was read
	// (JSON allows no leading zeros; -0 stays -0).
	if integer && digits <= 15 {
		return tok, nil
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil {
		return nil, err
	}
	return c.appendFloat(f), nil
}

// appendFloat writes f to c.scratch as encoding/json's float64 encoder does and returns it.
func (c *canonicaliser) appendFloat(f float64) []byte {
	start := len(c.scratch)
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b := strconv.AppendFloat(c.scratch, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	c.scratch = b
	return b[start:len(b):len(b)]
}

func (c *canonicaliser) write(dst []byte, v value) []byte {
	switch v.kind {
	case kindObject:
		dst = append(dst, '{')
		for i, m := range c.members[v.start : v.start+v.n] {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, m.enc...)
			dst = append(dst, ':')
			dst = c.write(dst, m.val)
		}
		return append(dst, '}')
	case kindArray:
		dst = append(dst, '[')
		for i, e := range c.elems[v.start : v.start+v.n] {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = c.write(dst, e)
		}
		return append(dst, ']')
	default:
		return append(dst, v.raw...)
	}
}
