/* The peer-comparison generator and mix check: N plain-RTP G.711 mu-law participants,
 * one UDP socket each, every participant sending a 20 ms frame every 20 ms (spread over
 * the 20 ms by participant), and receiving what the mixer sends back.
 *
 * Each member m of a room (0..9) sends a continuous tone at 400 + 100 m Hz. After a
 * warm-up, each received frame is decoded and the power at every member's frequency is
 * accumulated (Goertzel). A participant passes when it received at least 99% of the
 * frames expected, its own tone is at least 20 dB below the strongest other member's,
 * and at least one other member is heard. Prints one line per run:
 *   gen participants=N secs=S sent=.. received=.. expected=.. pass=.. fail=.. late_sends=..
 *
 * usage: gen SECS WARMUP_SECS FILE   (FILE: "local_ip local_port remote_ip remote_port room member" lines)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MEMBERS 10
#define FRAME 160
#define MAXP 20000

struct part {
    int fd, room, member;
    uint16_t seq;
    uint32_t ssrc;
    uint64_t sent, received, measured;
    double power[MEMBERS];
};

static uint8_t tone[MEMBERS][8000];
static struct part parts[MAXP];

static uint8_t ulaw_encode(int16_t s) {
    int v = s >> 2, mask = 0xFF;
    if (v < 0) { v = -v; mask = 0x7F; }
    int m = v + 0x21;
    if (m > 0x1FFF) m = 0x1FFF;
    int seg = 0;
    for (int t = m >> 6; t; t >>= 1) seg++;
    int mant = (m >> (seg + 1)) & 0x0F;
    return (uint8_t)(((seg << 4) | mant) ^ mask);
}

static int16_t ulaw_decode(uint8_t code) {
    uint8_t c = ~code;
    int e = (c >> 4) & 7, mant = c & 0x0F;
    int mag = (((mant << 3) + 0x84) << e) - 0x84;
    return (int16_t)((c & 0x80) ? -mag : mag);
}

/* Multiples of 50 Hz: whole cycles in every 160-sample frame, so the tones do not leak
 * into each other's Goertzel bins. */
static double freq(int m) { return 400.0 + 100.0 * m; }

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: gen SECS WARMUP FILE\n"); return 2; }
    double secs = atof(argv[1]), warmup = atof(argv[2]);
    FILE *f = fopen(argv[3], "r");
    if (!f) { perror(argv[3]); return 2; }
    for (int m = 0; m < MEMBERS; m++)
        for (int n = 0; n < 8000; n++)
            tone[m][n] = ulaw_encode((int16_t)(2000.0 * sin(2 * M_PI * freq(m) * n / 8000.0)));
    int n = 0;
    char lip[64], rip[64];
    int lport, rport, room, member;
    while (n < MAXP && fscanf(f, "%63s %d %63s %d %d %d", lip, &lport, rip, &rport, &room, &member) == 6) {
        struct part *p = &parts[n];
        p->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(lport)};
        inet_pton(AF_INET, lip, &a.sin_addr);
        int big = 1 << 20;
        setsockopt(p->fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
        if (bind(p->fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return 1; }
        struct sockaddr_in b = {.sin_family = AF_INET, .sin_port = htons(rport)};
        inet_pton(AF_INET, rip, &b.sin_addr);
        if (connect(p->fd, (struct sockaddr *)&b, sizeof b) < 0) { perror("connect"); return 1; }
        p->room = room;
        p->member = member % MEMBERS;
        p->ssrc = 0x5000 + n;
        n++;
    }
    fclose(f);
    int ep = epoll_create1(0);
    for (int i = 0; i < n; i++) {
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, parts[i].fd, &e);
    }
    struct epoll_event ready[256];
    uint8_t pkt[12 + FRAME], in[2048];
    double t0 = now_s();
    uint64_t ticks = (uint64_t)(secs * 1000), late = 0;
    for (uint64_t k = 0; k < ticks; k++) {
        double target = t0 + k * 1e-3;
        /* Receive whatever came back, then wait for the millisecond. */
        for (;;) {
            int any = 0;
            int nr = epoll_wait(ep, ready, 256, 0);
            for (int r = 0; r < nr; r++) {
                struct part *p = &parts[ready[r].data.u32];
                ssize_t len;
                while ((len = recv(p->fd, in, sizeof in, 0)) > 0) {
                    any = 1;
                    /* Only the mixed audio: RTP version 2, PCMU (RTCP, if any, is not). */
                    if (len <= 12 || (in[0] >> 6) != 2 || (in[1] & 0x7F) != 0) continue;
                    p->received++;
                    if (now_s() - t0 < warmup) continue;
                    p->measured++;
                    int hl = 12 + 4 * (in[0] & 0x0F);
                    if (in[0] & 0x10 && len > hl + 4) hl += 4 + 4 * ((in[hl + 2] << 8) | in[hl + 3]);
                    for (int m = 0; m < MEMBERS; m++) {
                        double w = 2 * M_PI * freq(m) / 8000.0, c = 2 * cos(w), s1 = 0, s2 = 0;
                        for (ssize_t j = hl; j < len; j++) {
                            double s0 = ulaw_decode(in[j]) + c * s1 - s2;
                            s2 = s1;
                            s1 = s0;
                        }
                        p->power[m] += s1 * s1 + s2 * s2 - c * s1 * s2;
                    }
                }
            }
            double t = now_s();
            if (t >= target) break;
            if (!any) {
                struct timespec d = {0, (long)((target - t) * 1e9)};
                if (d.tv_nsec > 200000) d.tv_nsec = 200000;
                nanosleep(&d, NULL);
            }
        }
        if (now_s() - target > 0.005) late++;
        uint64_t slot = k % 20, frame = k / 20;
        for (int i = (int)slot; i < n; i += 20) {
            struct part *p = &parts[i];
            uint32_t ts = (uint32_t)(frame * FRAME);
            pkt[0] = 0x80; pkt[1] = 0;
            pkt[2] = p->seq >> 8; pkt[3] = p->seq & 0xFF;
            pkt[4] = ts >> 24; pkt[5] = ts >> 16; pkt[6] = ts >> 8; pkt[7] = ts;
            pkt[8] = p->ssrc >> 24; pkt[9] = p->ssrc >> 16; pkt[10] = p->ssrc >> 8; pkt[11] = p->ssrc;
            uint32_t off = (uint32_t)((frame * FRAME) % 8000);
            memcpy(pkt + 12, &tone[p->member][off], FRAME);
            if (send(p->fd, pkt, sizeof pkt, 0) == sizeof pkt) p->sent++;
            p->seq++;
        }
    }
    uint64_t sent = 0, received = 0, pass = 0, fail = 0, expected = (uint64_t)(secs * 50);
    for (int i = 0; i < n; i++) {
        struct part *p = &parts[i];
        sent += p->sent;
        received += p->received;
        double own = p->power[p->member], best = 0;
        for (int m = 0; m < MEMBERS; m++)
            if (m != p->member && p->power[m] > best) best = p->power[m];
        int ok = p->received * 100 >= expected * 99 && best > 0 && own * 100 <= best && p->measured > 0;
        if (ok) pass++; else fail++;
        if (!ok && fail <= 5)
            fprintf(stderr, "participant %d (room %d member %d): received %lu of %lu, own/best power %.4f\n",
                    i, p->room, p->member, (unsigned long)p->received, (unsigned long)expected,
                    best > 0 ? own / best : -1.0);
    }
    printf("gen participants=%d secs=%.0f sent=%lu received=%lu expected=%lu pass=%lu fail=%lu late_sends=%lu\n",
           n, secs, (unsigned long)sent, (unsigned long)received, (unsigned long)(expected * n),
           (unsigned long)pass, (unsigned long)fail, (unsigned long)late);
    return fail ? 1 : 0;
}
