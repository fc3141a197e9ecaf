// SPDX-License-Identifier: MIT
/* The registry of interception approaches: one line per frontend. */
#include <stddef.h>
#include <string.h>

#include "../capture/capture.h"
#include "../nfqueue/nfqueue.h"
#include "../proxy/proxy.h"
#include "../tunbackend/tunbackend.h"
#include "../base/frontend.h"

const struct frontend_ops *const frontend_registry[] = {
	&tunbackend_frontend,
	&nfqueue_frontend,
	&proxy_frontend,
	&capture_frontend,
	NULL,
};

/* Approaches of DESIGN.md whose folders do not exist yet (none now; NULL ends the list). */
static const struct {
	const char *name, *issue;
} planned[] = {
	{ NULL, NULL },
};

const struct frontend_ops *frontend_find(const char *name)
{
	for (size_t i = 0; frontend_registry[i]; i++)
		if (strcmp(frontend_registry[i]->name, name) == 0)
			return frontend_registry[i];
	return NULL;
}

const char *frontend_planned(const char *name)
{
	for (size_t i = 0; planned[i].name; i++)
		if (strcmp(planned[i].name, name) == 0)
			return planned[i].issue;
	return NULL;
}
