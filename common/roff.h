/* roff: text for man(7) pages. The man pages' generated parts (the commands from the CLI
 * tables, the keys from the config tables) are written through here, so a help string with a
 * backslash, a leading dot or a hyphen cannot break the page or change its meaning.
 * Any thread; writes to the caller's FILE. */
#ifndef VW_ROFF_H
#define VW_ROFF_H

#include <stdio.h>

/* s as roff text: backslashes as \e, '-' as \- (so options copy as ASCII hyphen-minus), a
 * line starting with '.' or '\'' guarded by \&, and each newline kept (a line break in the
 * source is a new output line, joined by the formatter into the paragraph). */
void vw_roff_text(FILE *out, const char *s);
/* A request line with one quoted argument: .B "text" (quotes inside become \(dq). */
void vw_roff_req(FILE *out, const char *req, const char *arg);

#endif
