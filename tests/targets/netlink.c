/*
 * Netlink sockets (issue 10), captured with nothing queued and made again by the restore.
 *
 *   netlink REPORT          fd 5: NETLINK_ROUTE bound (autobind: port id = PID) to the groups
 *                           RTMGRP_LINK | RTMGRP_IPV4_IFADDR, and joined to group 33
 *                           (RTNLGRP_BRVLAN, past the first 32) with NETLINK_ADD_MEMBERSHIP;
 *                           fd 6: NETLINK_ROUTE that answered an RTM_GETLINK dump (its port id
 *                           the kernel's negative autobind); fd 7: NETLINK_GENERIC bound to an
 *                           explicit port id; fd 8: NETLINK_KOBJECT_UEVENT on group 1. After the
 *                           go file it checks every socket's type, protocol, port id and groups
 *                           (NETLINK_LIST_MEMBERSHIPS) against what it saw before, and that a new
 *                           RTM_GETLINK dump on fd 6 lists the loopback interface and a
 *                           CTRL_CMD_GETFAMILY "nlctrl" request on fd 7 is answered.
 *   netlink REPORT queued   fd 5: NETLINK_ROUTE with the reply of a dump request unread (the
 *                           capture refusal); after go it reads the reply, which lists the
 *                           loopback interface.
 */
#include "target.h"

#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <sys/socket.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

struct state {
	uint32_t portid, groups[4];
	int type, proto;
};

static void at(int fd, int want)
{
	if (fd < 0 || dup2(fd, want) != want)
		_exit(3);
	if (fd != want)
		close(fd);
}

static void get_state(int fd, struct state *s)
{
	struct sockaddr_nl sa;
	socklen_t len = sizeof(sa), l = sizeof(s->groups), il = sizeof(int);

	memset(s, 0, sizeof(*s));
	memset(&sa, 0, sizeof(sa));
	getsockname(fd, (struct sockaddr *)&sa, &len);
	s->portid = sa.nl_pid;
	getsockopt(fd, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, s->groups, &l);
	getsockopt(fd, SOL_SOCKET, SO_TYPE, &s->type, &il);
	il = sizeof(int);
	getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &s->proto, &il);
}

static int dump_reply(int fd);

/* Sends an RTM_GETLINK dump request on fd; with `read_all`, reads to NLMSG_DONE and returns
 * whether the loopback interface (ifindex 1) was listed. */
static int getlink(int fd, int read_all)
{
	struct {
		struct nlmsghdr h;
		struct ifinfomsg i;
	} req;

	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = sizeof(req);
	req.h.nlmsg_type = RTM_GETLINK;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.h.nlmsg_seq = 1;
	req.i.ifi_family = AF_UNSPEC;
	if (send(fd, &req, sizeof(req), 0) != sizeof(req))
		return 0;
	return read_all ? dump_reply(fd) : 1;
}

/* Reads a dump reply to NLMSG_DONE; whether it listed the loopback interface (ifindex 1). */
static int dump_reply(int fd)
{
	static char buf[65536];
	int lo = 0;

	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;

		if (poll(&p, 1, 10000) != 1)
			return 0;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			return 0;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
		     h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE)
				return lo;
			if (h->nlmsg_type == NLMSG_ERROR)
				return 0;
			if (h->nlmsg_type == RTM_NEWLINK &&
			    ((struct ifinfomsg *)NLMSG_DATA(h))->ifi_index == 1)
				lo = 1;
		}
	}
}

/* A CTRL_CMD_GETFAMILY request for "nlctrl" on generic netlink socket fd; whether the answer
 * is a message of the controller family (GENL_ID_CTRL), not an error. */
static int genl_nlctrl(int fd)
{
	struct {
		struct nlmsghdr h;
		struct genlmsghdr g;
		struct nlattr a;
		char name[8];
	} req;
	char buf[8192];
	struct pollfd p = { fd, POLLIN, 0 };
	ssize_t n;

	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = sizeof(req);
	req.h.nlmsg_type = GENL_ID_CTRL;
	req.h.nlmsg_flags = NLM_F_REQUEST;
	req.h.nlmsg_seq = 2;
	req.g.cmd = CTRL_CMD_GETFAMILY;
	req.g.version = 1;
	req.a.nla_type = CTRL_ATTR_FAMILY_NAME;
	req.a.nla_len = sizeof(req.a) + 7;
	strcpy(req.name, "nlctrl");
	if (send(fd, &req, sizeof(req), 0) != sizeof(req) || poll(&p, 1, 10000) != 1)
		return 0;
	n = recv(fd, buf, sizeof(buf), 0);
	return n >= (ssize_t)sizeof(struct nlmsghdr) &&
	       ((struct nlmsghdr *)buf)->nlmsg_type == GENL_ID_CTRL;
}

static void same(int fd, const struct state *before, const char *what)
{
	struct state now;

	get_state(fd, &now);
	check(!memcmp(&now, before, sizeof(now)), what,
	      "port id %u groups %#x %#x, type %d protocol %d; was %u %#x %#x, %d %d", now.portid,
	      now.groups[0], now.groups[1], now.type, now.proto, before->portid, before->groups[0],
	      before->groups[1], before->type, before->proto);
}

int main(int argc, char **argv)
{
	const char *mode;
	struct sockaddr_nl sa;
	struct state s5, s6, s7, s8;
	int group = RTNLGRP_BRVLAN;

	target_init(argc, argv);
	mode = argc > 2 ? argv[2] : "all";
	memset(&sa, 0, sizeof(sa));
	sa.nl_family = AF_NETLINK;
	if (!strcmp(mode, "queued")) {
		at(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), 5);
		if (!getlink(5, 0))
			return 4;
		nap_ms(200); /* the kernel queues the reply at once; be sure */
		report_ready();
		wait_for_go();
		check(dump_reply(5), "queued_reply_read", "no loopback in the dump reply: %s",
		      strerror(errno));
		done_and_idle();
	}
	at(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), 5);
	sa.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR;
	if (bind(5, (struct sockaddr *)&sa, sizeof(sa)) ||
	    setsockopt(5, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)))
		return 4;
	at(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), 6);
	if (!getlink(6, 1))
		return 5;
	at(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_GENERIC), 7);
	sa.nl_groups = 0;
	sa.nl_pid = 0x70000000u | (uint32_t)getpid();
	if (bind(7, (struct sockaddr *)&sa, sizeof(sa)))
		return 6;
	at(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT), 8);
	sa.nl_pid = 0;
	sa.nl_groups = 1;
	if (bind(8, (struct sockaddr *)&sa, sizeof(sa)))
		return 7;
	get_state(5, &s5);
	get_state(6, &s6);
	get_state(7, &s7);
	get_state(8, &s8);
	report("INFO port ids %u %d %#x %d, fd 5 groups %#x %#x", s5.portid, (int)s6.portid,
	       s7.portid, (int)s8.portid, s5.groups[0], s5.groups[1]);
	report_ready();
	wait_for_go();
	same(5, &s5, "route_groups_kept");
	check(s5.portid == (uint32_t)getpid() && s5.groups[1] == 1u, "route_autobind_and_group_33",
	      "port id %u, word 1 %#x", s5.portid, s5.groups[1]);
	same(6, &s6, "route_request_socket_kept");
	check(getlink(6, 1), "route_dump_after_restore", "no loopback in the dump: %s",
	      strerror(errno));
	same(7, &s7, "generic_portid_kept");
	check(genl_nlctrl(7), "generic_request_after_restore", "%s", strerror(errno));
	same(8, &s8, "uevent_group_kept");
	done_and_idle();
}
