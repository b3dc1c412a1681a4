/* Relay floor (c): a C line relay with one thread per direction.
 *
 *   relay -- COMMAND ARGS...
 *
 * Spawns COMMAND with pipes for its stdin and stdout (stderr inherited) and relays
 * newline-delimited frames both ways: read(2) into a growable buffer, then one
 * write(2) per complete line, as a line relay that judged each frame would. It
 * does not look inside frames. Client EOF closes the child's stdin; the relay exits
 * with the child's status once the child has closed its stdout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHUNK (1 << 16)

struct pump {
    int in;
    int out;
    int close_out;
};

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void *pump_run(void *arg) {
    struct pump *pp = (struct pump *)arg;
    size_t cap = CHUNK * 2, len = 0, scanned = 0;
    char *buf = malloc(cap);
    if (buf == NULL) abort();
    for (;;) {
        if (cap - len < CHUNK) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (buf == NULL) abort();
        }
        ssize_t r = read(pp->in, buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
        size_t start = 0;
        char *nl;
        while ((nl = memchr(buf + scanned, '\n', len - scanned)) != NULL) {
            size_t end = (size_t)(nl - buf) + 1;
            if (write_all(pp->out, buf + start, end - start) < 0) goto done;
            start = end;
            scanned = end;
        }
        scanned = len;
        if (start > 0) {
            memmove(buf, buf + start, len - start);
            len -= start;
            scanned -= start;
        }
    }
    if (len > 0) write_all(pp->out, buf, len);
done:
    free(buf);
    if (pp->close_out) close(pp->out);
    return NULL;
}

int main(int argc, char **argv) {
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "--") == 0) first = 2;
    if (first >= argc) {
        fprintf(stderr, "usage: relay -- COMMAND ARGS...\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int to_child[2], from_child[2];
    if (pipe2(to_child, O_CLOEXEC) < 0 || pipe2(from_child, O_CLOEXEC) < 0) {
        perror("pipe2");
        return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        dup2(to_child[0], 0);
        dup2(from_child[1], 1);
        execvp(argv[first], &argv[first]);
        perror("execvp");
        _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    struct pump client = {0, to_child[1], 1};
    struct pump upstream = {from_child[0], 1, 0};
    pthread_t tc, tu;
    pthread_create(&tc, NULL, pump_run, &client);
    pthread_detach(tc);
    pthread_create(&tu, NULL, pump_run, &upstream);
    pthread_join(tu, NULL);
    int status = 0;
    waitpid(pid, &status, 0);
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}
