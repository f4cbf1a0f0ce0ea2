/*
 * Socket activation: the listening sockets systemd passes (sd_listen_fds(3),
 * LISTEN_FDS, LISTEN_FDNAMES). Without libsystemd there are none.
 *
 * Called once at start-up, on the loop thread. The fds returned belong to
 * the caller.
 */
#ifndef RV_ACTIVATION_H
#define RV_ACTIVATION_H

/*
 * The passed sockets: returns how many (0 when none), with *fds and their
 * *names (FileDescriptorName=, or NULL) to release with activation_free().
 * The environment variables are removed, so children do not see them. -1
 * after logging if a passed descriptor is not a listening stream socket.
 */
int activation_fds(int **fds, char ***names);
void activation_free(int *fds, char **names, int n);

#endif
