#include "roff.h"

void vw_roff_text(FILE *out, const char *s)
{
	int bol = 1;
	for (; *s; s++) {
		if (bol && (*s == '.' || *s == '\''))
			fputs("\\&", out);
		bol = 0;
		switch (*s) {
		case '\\':
			fputs("\\e", out);
			break;
		case '-':
			fputs("\\-", out);
			break;
		case '\n':
			fputc('\n', out);
			bol = 1;
			break;
		default:
			fputc(*s, out);
		}
	}
}

void vw_roff_req(FILE *out, const char *req, const char *arg)
{
	fprintf(out, ".%s \"", req);
	for (const char *p = arg; *p; p++) {
		if (*p == '"')
			fputs("\\(dq", out);
		else if (*p == '\\')
			fputs("\\e", out);
		else if (*p == '-')
			fputs("\\-", out);
		else
			fputc(*p, out);
	}
	fputs("\"\n", out);
}
