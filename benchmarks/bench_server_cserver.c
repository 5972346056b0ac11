/* A reference echo server in C for bench_server.py: the floor no Python server
 * can go under on this machine (the kernel's share of a round trip plus a few
 * instructions), so the other figures can be read against it.
 *
 *     bench_server_cserver           prints the port, then serves until SIGTERM
 *
 * One thread, level-triggered epoll, non-blocking sockets: accept what is
 * pending, and for each readable connection one recv and one send of what came
 * (a 1 KiB echo fits any socket buffer; a short send drops the connection
 * rather than buffering, which this benchmark never provokes).
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {0};
    socklen_t length = sizeof addr;
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listener, 1024) < 0) {
        perror("listen");
        return 1;
    }
    getsockname(listener, (struct sockaddr *)&addr, &length);
    printf("%d\n", ntohs(addr.sin_port));
    fflush(stdout);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
    epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
    static char buffer[65536];
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        if (n < 0 && errno != EINTR) { perror("epoll_wait"); return 1; }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                int conn;
                while ((conn = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = conn};
                    epoll_ctl(ep, EPOLL_CTL_ADD, conn, &cev);
                }
                continue;
            }
            ssize_t got = recv(fd, buffer, sizeof buffer, 0);
            if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (got <= 0 || send(fd, buffer, (size_t)got, 0) != got) close(fd);
        }
    }
}
