/*
 * admin.h - the admin listener (default 127.0.0.1:8001): metrics, health,
 * configuration, backends, reloads and the KServe/Triton model repository
 * extension.  Reads are GET; everything that changes state is POST.
 *
 *   GET  /metrics                        GET /v2/health/{live,ready}
 *   GET  /admin/config                   GET /admin/backends
 *   POST /admin/reload                   POST /admin/backends/{name}/drain
 *   POST /v2/repository/index            POST /v2/repository/models/{m}/load|unload
 */
#ifndef INFERGW_ADMIN_H
#define INFERGW_ADMIN_H

struct call;

/* adm_handle - answer c (now, or when its control job finishes). */
void adm_handle(struct call *c);

#endif
