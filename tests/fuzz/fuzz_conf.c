/* libFuzzer target: the INI configuration parser (common/conf.c over inih) through both
 * real schemas, the agent's and the server's, with their cross-section checks. The first
 * byte picks the schema. Errors must be reported (count and text agree) and everything
 * loaded must be freed again (LeakSanitizer checks). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent_conf.h"
#include "server_conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 64 * 1024)
		return 0;
	int which = data[0] & 1;
	/* the string entry points take NUL-terminated text, as a file read would give */
	char *text = malloc(size);
	if (!text)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	struct vw_conf_errors errs;
	memset(&errs, 0, sizeof(errs));
	int rc;
	if (which) {
		struct server_conf cfg;
		rc = server_conf_load_string(&cfg, "fuzz.ini", text, &errs);
		server_conf_free(&cfg);
	} else {
		struct agent_conf cfg;
		rc = agent_conf_load_string(&cfg, "fuzz.ini", text, &errs);
		agent_conf_free(&cfg);
	}
	if (rc > 0 && (errs.count == 0 || errs.len == 0))
		abort(); /* an error that says nothing */
	if (errs.len >= sizeof(errs.text) || strlen(errs.text) != errs.len)
		abort();
	free(text);
	return 0;
}
