/*-------------------------------------------------------------------------
 *
 * json_number.c
 *		float4 and float8 values as to_jsonb() writes them.
 *
 * to_jsonb() turns a float into a jsonb numeric: it takes the float's
 * output function text and reads it with numeric_in() (see datum_to_jsonb()
 * in PostgreSQL's jsonb.c), unless the text has an 'N' or 'n' in it (NaN,
 * Infinity, -Infinity), which stays a string.  jsonb then prints that
 * numeric, so 1e+300 comes out as 301 digits, 1e-07 as 0.0000001 and -0 as
 * 0.  The event must show the same text, yet without building a numeric
 * per value: the output function's text is rewritten here directly, and
 * text without an exponent, nearly every float, is copied as it is.
 *
 * Floats are also the one kind of value whose bytes can change while its
 * JSON does not (-0 and 0, NaNs of other bits, values that print alike
 * when extra_float_digits rounds), so UPDATE's "changes" asks here whether
 * two values that differ in bytes differ as JSON.
 *
 * This file must not know about events, triggers or relations.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "utils/float.h"

#include "capture/capture.h"
#include "common/json_out.h"
#include "common/strbuf.h"

/*
 * Append float output text that has an exponent ("1.5e+16", "-1e-07") as
 * numeric_out(numeric_in(text)) would write it: every digit in plain
 * notation, as many decimals as numeric_in keeps (those of the mantissa
 * less the exponent, at least none), no sign on zero.
 */
static void
append_expanded(StringInfo buf, const char *str, int mant_len, int exponent)
{
	const char *digits = str;
	const char *point;
	bool		neg = false;
	bool		zero = true;
	int			nint;			/* mantissa digits before its point */
	int			ndigits;		/* all mantissa digits */
	int			dp;				/* digits before the result's point */
	int			dscale;			/* digits after it */
	int			k;
	char	   *out;

	if (*digits == '-')
	{
		neg = true;
		digits++;
		mant_len--;
	}
	point = memchr(digits, '.', mant_len);
	nint = point ? point - digits : mant_len;
	ndigits = point ? mant_len - 1 : mant_len;
	dp = nint + exponent;
	dscale = Max(0, (ndigits - nint) - exponent);

#define MANTISSA_DIGIT(k)	((k) < nint ? digits[(k)] : digits[(k) + 1])

	for (k = 0; k < ndigits; k++)
		zero &= (MANTISSA_DIGIT(k) == '0');

	enlargeStringInfo(buf, 1 + Max(dp, 1) + 1 + dscale);
	out = buf->data + buf->len;
	if (neg && !zero)
		*out++ = '-';

	/* the integer part, without leading zeros, "0" if there is none */
	k = 0;
	while (k < dp && (k >= ndigits || MANTISSA_DIGIT(k) == '0'))
		k++;
	if (k >= dp)
		*out++ = '0';
	for (; k < dp; k++)
		*out++ = (k < ndigits) ? MANTISSA_DIGIT(k) : '0';

	/* the decimals: zeros before the mantissa's first digit if dp < 0 */
	if (dscale > 0)
	{
		*out++ = '.';
		for (k = dp; k < dp + dscale; k++)
			*out++ = (k < 0 || k >= ndigits) ? '0' : MANTISSA_DIGIT(k);
	}
#undef MANTISSA_DIGIT

	buf->len = out - buf->data;
	buf->data[buf->len] = '\0';
}

/*
 * Append the text of float4out or float8out ('len' bytes of 'str') as the
 * JSON that to_jsonb() gives for the value.  Plain text is the common case
 * and costs one scan; "-0" becomes "0", exponent forms are expanded, and
 * NaN and the infinities are quoted.
 */
void
aa_json_float(StringInfo buf, const char *str, int len)
{
	int			exp_at = -1;
	int			i;

	for (i = 0; i < len; i++)
	{
		if (str[i] == 'e')
			exp_at = i;
		else if (str[i] == 'N' || str[i] == 'n')
		{
			/* to_jsonb's own test for text that is not a number */
			aa_json_string(buf, str, len);
			return;
		}
	}
	if (exp_at >= 0)
		append_expanded(buf, str, exp_at, atoi(str + exp_at + 1));
	else if (len == 2 && str[0] == '-' && str[1] == '0')
		aa_put_char(buf, '0');
	else
		aa_put(buf, str, len);
}

/*
 * Whether two values of a kind that has floats in it (vo->has_float), whose
 * bytes differ, still give the same JSON text.  For a lone float the answer
 * mostly comes from the values: with extra_float_digits above zero floats
 * are printed exactly and briefly, so distinct values print differently,
 * except zeros and NaNs.  Otherwise (rounded output, arrays, composites)
 * both values are written out and compared, in the caller's memory context.
 */
bool
aa_value_same_json(AAValueOut *vo, Datum a, Datum b)
{
	StringInfoData ta;
	StringInfoData tb;
	bool		same;

	if (vo->category == AAJ_FLOAT)
	{
		double		x;
		double		y;

		if (vo->typid == FLOAT4OID)
		{
			x = DatumGetFloat4(a);
			y = DatumGetFloat4(b);
		}
		else
		{
			x = DatumGetFloat8(a);
			y = DatumGetFloat8(b);
		}
		if ((x == 0 && y == 0) || (isnan(x) && isnan(y)))
			return true;
		if (extra_float_digits > 0)
			return false;
	}
	initStringInfo(&ta);
	initStringInfo(&tb);
	aa_value_append(&ta, vo, a);
	aa_value_append(&tb, vo, b);
	same = (ta.len == tb.len && memcmp(ta.data, tb.data, ta.len) == 0);
	pfree(ta.data);
	pfree(tb.data);
	return same;
}
