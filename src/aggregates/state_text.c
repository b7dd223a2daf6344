/*
 * state_text.c -- reading and writing the text forms of the aggregate states
 * (dp_internal.sum_state, dp_internal.hist_state) and 128-bit integers.
 */
#include "postgres.h"

#include "utils/float.h"

#include "aggregates/state.h"

void
dp_append_int128(StringInfo buf, int128 v)
{
	char		digits[48];
	int			i = 0;
	uint128		u = v < 0 ? -(uint128) v : (uint128) v;

	do
	{
		digits[i++] = '0' + (int) (u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		appendStringInfoChar(buf, '-');
	while (i > 0)
		appendStringInfoChar(buf, digits[--i]);
}

char *
dp_int128_to_text(int128 v)
{
	StringInfoData buf;

	initStringInfo(&buf);
	dp_append_int128(&buf, v);
	return buf.data;
}

void
dp_bad_state_input(const char *type, const char *input)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type %s: \"%s\"", type, input),
			 errhint("Values of this type are produced by pg_dp's aggregates, not written by hand.")));
	pg_unreachable();
}

int128
dp_parse_int128(char **p, const char *type, const char *input)
{
	bool		neg = false;
	uint128		u = 0;
	int			digits = 0;

	if (**p == '-')
	{
		neg = true;
		(*p)++;
	}
	while (**p >= '0' && **p <= '9')
	{
		u = u * 10 + (uint128) (**p - '0');
		(*p)++;
		if (++digits > 38)
			dp_bad_state_input(type, input);
	}
	if (digits == 0)
		dp_bad_state_input(type, input);
	return neg ? -(int128) u : (int128) u;
}

float8
dp_parse_float8(char **p, const char *type, const char *input)
{
	char	   *end;
	float8		v = float8in_internal(*p, &end, type, input);

	*p = end;
	return v;
}

void
dp_expect_char(char **p, char c, const char *type, const char *input)
{
	if (**p != c)
		dp_bad_state_input(type, input);
	(*p)++;
}
