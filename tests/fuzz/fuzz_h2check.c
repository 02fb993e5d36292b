/*
 * fuzz_h2check.c - libFuzzer target for the HTTP/2 request messaging rules
 * (gateway/net/h2check.c), which replace nghttp2's own checks and read
 * names and values eight bytes at a time.
 *
 * The input is a stream of records, each: a flags byte (bit 0: the field is
 * a trailer; bit 1: end the header block after it; bit 2: END_STREAM with
 * that end; bit 3: the record is DATA, its length the next byte), a name
 * length byte, a value length byte, then the name and value bytes.  Every
 * field's verdict is checked against a byte-by-byte reading of RFC 9110 /
 * RFC 9113 written here independently of the word-at-a-time code: a regular
 * field without rules of its own is accepted exactly when its name is a
 * lower-case token and its value field-vchars with no SP/HTAB at either
 * end.  Invariants: a malformed message stays malformed; a pseudo-header
 * field is refused in trailers and after a regular field; an accepted
 * :method is a token, an accepted :path has no byte below 0x21 or DEL.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "h2check.h"

static bool fz_tchar(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool fz_name_ok(const uint8_t *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!fz_tchar(s[i]) || (s[i] >= 'A' && s[i] <= 'Z'))
			return false;
	return true;
}

static bool fz_value_ok(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool ws = s[i] == ' ' || s[i] == '\t';

		if (s[i] == 0x7f || (s[i] < 0x20 && s[i] != '\t'))
			return false;
		if (ws && (i == 0 || i == n - 1))
			return false;
	}
	return true;
}

/* A regular field name with rules of its own in h2check.c. */
static bool fz_special(const uint8_t *s, size_t n)
{
	static const char *const names[] = {"te", "host", "upgrade", "connection",
					    "keep-alive", "content-length", "proxy-connection",
					    "transfer-encoding"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == n && !memcmp(s, names[i], n))
			return true;
	return false;
}

static bool fz_is(const uint8_t *s, size_t n, const char *lit)
{
	return strlen(lit) == n && !memcmp(s, lit, n);
}

static void fz_check_field(const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen,
			   bool trailer, bool after_regular, enum h2c_kind k)
{
	if (nlen && name[0] == ':') {
		if (trailer || after_regular)
			FZ_CHECK(k == H2C_MALFORMED);
		if (k == H2C_METHOD) {
			FZ_CHECK(fz_is(name, nlen, ":method") && vlen > 0);
			for (size_t i = 0; i < vlen; i++)
				FZ_CHECK(fz_tchar(value[i]));
		}
		if (k == H2C_PATH) {
			FZ_CHECK(fz_is(name, nlen, ":path") && vlen > 0);
			for (size_t i = 0; i < vlen; i++)
				FZ_CHECK(value[i] > 0x20 && value[i] != 0x7f);
		}
		FZ_CHECK(k != H2C_REGULAR);
		return;
	}
	if (!fz_special(name, nlen))
		FZ_CHECK((k == H2C_REGULAR) == (fz_name_ok(name, nlen) && fz_value_ok(value, vlen)));
	else
		FZ_CHECK(k == H2C_MALFORMED || k == H2C_REGULAR);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct h2_msg m = {0};
	bool regular = false, trailer_block = false;
	size_t off = 0;

	while (off + 3 <= n) {
		uint8_t flags = d[off];
		size_t nlen = d[off + 1], vlen = d[off + 2];
		bool was_bad = h2c_malformed(&m);

		off += 3;
		if (flags & 8) {
			bool ok = h2c_data(&m, nlen);

			FZ_CHECK(ok == !h2c_malformed(&m));
			off -= 1;	/* DATA has no value length */
		} else {
			const uint8_t *name = d + off, *value = name + nlen;
			bool trailer = (flags & 1) || trailer_block;
			enum h2c_kind k;

			if (off + nlen + vlen > n)
				break;
			off += nlen + vlen;
			k = h2c_field(&m, name, nlen, value, vlen, trailer);
			fz_check_field(name, nlen, value, vlen, trailer, regular, k);
			FZ_CHECK((k == H2C_MALFORMED) <= h2c_malformed(&m));
			if (nlen && name[0] != ':')
				regular = true;
			if (flags & 2) {
				bool ok = h2c_headers_end(&m, trailer, flags & 4);

				FZ_CHECK(ok == !h2c_malformed(&m));
				trailer_block = true;
			}
		}
		FZ_CHECK(!was_bad || h2c_malformed(&m));
	}
	return 0;
}
