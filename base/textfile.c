// SPDX-License-Identifier: MIT
/* Reading a whole configuration file (peers, policy) into memory, bounded. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "textfile.h"

int textfile_read(const char *path, size_t max, char **text, size_t *len)
{
	struct stat st;
	ssize_t n = 0;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
		ret = S_ISDIR(st.st_mode) ? -EISDIR : -EFBIG;
		goto out;
	}
	*text = malloc((size_t)st.st_size + 1);
	if (!*text) {
		ret = -ENOMEM;
		goto out;
	}
	for (*len = 0; *len < (size_t)st.st_size; *len += (size_t)n) {
		n = read(fd, *text + *len, (size_t)st.st_size - *len);
		if (n <= 0)
			break;
	}
	if (n < 0) {
		ret = -errno;
		free(*text);
		*text = NULL;
	} else {
		(*text)[*len] = '\0';
	}
out:
	close(fd);
	return ret;
}
