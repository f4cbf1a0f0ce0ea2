/*
 * Prometheus metrics over HTTP (--metrics HOST:PORT, libevent's evhttp):
 * /metrics in the text exposition format, /healthz (the loop answers) and
 * /readyz (accepting, and the store takes writes). Loop thread only.
 */
#ifndef RV_METRICS_H
#define RV_METRICS_H

#include <stdbool.h>

struct event_base;

/* Serve on config.metrics, if set; logs the bound address. 0, or -1 after logging. */
int metrics_init(struct event_base *base);
void metrics_finish(void);
/* Whether /readyz may say ready: set once ready, cleared when shutdown begins. */
void metrics_set_ready(bool ready);

#endif
