/* Sockets passed by systemd. */
#include <stdlib.h>
#include <string.h>

#include "activation.h"
#include "log.h"

#ifdef RV_HAVE_SYSTEMD
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

int
activation_fds(int **fds, char ***names)
{
	int n = sd_listen_fds_with_names(1, names);

	*fds = NULL;
	if (n <= 0) {
		if (n < 0)
			log_error("socket activation: %s", strerror(-n));
		*names = NULL;
		return n < 0 ? -1 : 0;
	}
	*fds = calloc((size_t)n, sizeof **fds);
	if (*fds == NULL) {
		log_error("socket activation: out of memory");
		activation_free(NULL, *names, n);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		(*fds)[i] = SD_LISTEN_FDS_START + i;
		if (sd_is_socket((*fds)[i], AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
			log_error(
				"socket activation: descriptor %d is not a listening stream socket "
				"(ListenStream= only)",
				(*fds)[i]);
			activation_free(*fds, *names, n);
			return -1;
		}
	}
	log_info("socket activation: %d sockets from systemd", n);
	return n;
}

#else

int
activation_fds(int **fds, char ***names)
{
	*fds = NULL;
	*names = NULL;
	if (getenv("LISTEN_FDS") != NULL)
		log_warn("socket activation: built without libsystemd, ignoring LISTEN_FDS");
	return 0;
}

#endif

void
activation_free(int *fds, char **names, int n)
{
	if (names != NULL) {
		for (int i = 0; i < n; i++)
			free(names[i]);
		free(names);
	}
	free(fds);
}
