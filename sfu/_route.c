/* _route: Route, where a C fan-out Slot or a sender-report Reporter sends (declared in _fanout.h): the socket,
 * the remote address and the SRTP session's protect function, bound by sfu.hooks.wire.PacketWire. */
#include "_fanout.h"

void route_clear(Route *r) {
    Py_CLEAR(r->sock);
    Py_CLEAR(r->session);
    r->srtp = NULL;
    r->protect = NULL;
}

int route_traverse(Route *r, visitproc visit, void *arg) {
    Py_VISIT(r->sock);
    Py_VISIT(r->session);
    return 0;
}

static int route_addr(int family, const char *host, int port, struct sockaddr_storage *addr, socklen_t *len) {
    memset(addr, 0, sizeof *addr);
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)addr;
        a->sin_family = AF_INET;
        a->sin_port = htons((unsigned short)port);
        *len = sizeof *a;
        return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
    }
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((unsigned short)port);
        *len = sizeof *a;
        return inet_pton(AF_INET6, host, &a->sin6_addr) == 1 ? 0 : -1;
    }
    return -1;
}

PyObject *route_set(Route *r, PyObject *args) {
    PyObject *sock, *session;
    int family, port;
    const char *host;
    unsigned long long srtp, protect;
    if (!PyArg_ParseTuple(args, "OisiOKK", &sock, &family, &host, &port, &session, &srtp, &protect))
        return NULL;
    struct sockaddr_storage addr;
    socklen_t len;
    if (route_addr(family, host, port, &addr, &len) < 0 || !srtp || !protect)
        Py_RETURN_FALSE;
    route_clear(r);
    Py_INCREF(sock);
    r->sock = sock;
    Py_INCREF(session);
    r->session = session;
    r->srtp = (void *)(uintptr_t)srtp;
    r->protect = (protect_fn)(uintptr_t)protect;
    r->addr = addr;
    r->addr_len = len;
    Py_RETURN_TRUE;
}

int route_send(Route *r, unsigned char *buf, int len, int *sent) {
    if (r->protect(r->srtp, buf, &len) != 0)
        return -1;
    int fd = PyObject_AsFileDescriptor(r->sock);
    if (fd < 0) {
        PyErr_Clear();
        route_clear(r);  /* socket closed: Python rebinds or takes the slow path */
        return -1;
    }
    if (sendto(fd, buf, len, 0, (struct sockaddr *)&r->addr, r->addr_len) < 0)
        return -1;  /* full socket buffer or error: the packet is lost (NACK recovers video) */
    *sent = len;
    return 0;
}
