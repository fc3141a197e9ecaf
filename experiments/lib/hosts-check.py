#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# hosts-check.py: reads `ansible-inventory --list` JSON, refuses an inventory whose addresses could route experiment traffic off the listed hosts, prints the role variables.
#
# Usage: ansible-inventory -i FILE --list | hosts-check.py TUN_NET4 TUN_NET6
#
# Output on success: "NAME VALUE" lines (no spaces in values) that
# experiments/lib/hosts.sh reads into the harness's role variables.
# On refusal: "hosts-check: ..." lines on stderr naming every problem, exit 1.
#
# The harness only ever adds on-link addresses and routes to the underlay,
# inner and tunnel networks via the peer on that link, so its traffic stays
# between the hosts when (a) every one of those networks lies inside the
# private prefixes the inventory declares (tl_private; RFC 1918 / ULA only),
# (b) each role's peer is on the same link prefix (cli-srv underlay, srv-dst
# inner), (c) the networks do not overlap, and (d) no management address
# (ansible_host) lies in them, so the control plane never shares them.
import ipaddress
import json
import re
import sys

ROLES = ("cli", "srv", "dst")
FUTURE_ROLES = ("rtr", "srv2")  # groups a later topology uses; accepted, not driven yet
NEEDS = {
    "cli": ("ul_if", "ul4", "ul6"),
    "srv": ("ul_if", "ul4", "ul6", "in_if", "in4", "in6"),
    "dst": ("in_if", "in4", "in6"),
}
PRIVATE = [ipaddress.ip_network(p) for p in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")]
DEFAULT_DECLARED = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fd00::/8"
IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
HOSTNAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
DIRNAME = re.compile(r"^/[A-Za-z0-9_./-]{2,200}$")


def main():
    problems = []
    tun4, tun6 = (ipaddress.ip_network(a) for a in sys.argv[1:3])
    inv = json.load(sys.stdin)
    hostvars = inv.get("_meta", {}).get("hostvars", {})
    hosts = {}
    for role in ROLES:
        members = inv.get(role, {}).get("hosts", [])
        if len(members) != 1:
            problems.append(f"group [{role}] must list exactly one host, it lists {len(members)}")
            continue
        if not HOSTNAME.match(members[0]):
            problems.append(f"host name '{members[0]}' in [{role}]: letters, digits, . _ - only")
            continue
        hosts[role] = members[0]
    if len(set(hosts.values())) != len(hosts):
        problems.append("cli, srv and dst must be three different hosts")
    if problems:
        refuse(problems)

    v = {role: hostvars.get(h, {}) for role, h in hosts.items()}
    for role in ROLES:
        for key in NEEDS[role]:
            if not str(v[role].get(key, "")).strip():
                problems.append(f"host {hosts[role]} ([{role}]) needs the variable {key}")
    if problems:
        refuse(problems)

    iface = {}
    for role in ROLES:
        for key in ("ul_if", "in_if"):
            if key in NEEDS[role]:
                name = str(v[role][key])
                if not IFNAME.match(name):
                    problems.append(f"{hosts[role]}: {key}='{name}' is not an interface name")
                iface[(role, key)] = name
    if iface.get(("srv", "ul_if")) == iface.get(("srv", "in_if")):
        problems.append(f"{hosts['srv']}: ul_if and in_if must be two interfaces (the server routes between them)")

    addr = {}
    for role in ROLES:
        for key in NEEDS[role]:
            if key.endswith("_if"):
                continue
            text = str(v[role][key])
            try:
                a = ipaddress.ip_interface(text)
            except ValueError:
                problems.append(f"{hosts[role]}: {key}='{text}' is not ADDRESS/PREFIXLEN")
                continue
            if a.version != (4 if key.endswith("4") else 6):
                problems.append(f"{hosts[role]}: {key}='{text}' is not IPv{key[-1]}")
                continue
            if a.network.prefixlen == a.max_prefixlen or a.ip == a.network.network_address:
                problems.append(f"{hosts[role]}: {key}='{text}' must be a host address inside a link prefix")
            addr[(role, key)] = a
    if problems:
        refuse(problems)

    declared_text = str(v["cli"].get("tl_private", DEFAULT_DECLARED))
    declared = []
    for p in declared_text.split(","):
        try:
            net = ipaddress.ip_network(p.strip())
        except ValueError:
            problems.append(f"tl_private: '{p}' is not a prefix")
            continue
        if not any(net.version == q.version and net.subnet_of(q) for q in PRIVATE):
            problems.append(f"tl_private: {net} is not a private prefix (RFC 1918 or ULA fc00::/7)")
        declared.append(net)
    for role in ROLES:
        if str(v[role].get("tl_private", DEFAULT_DECLARED)) != declared_text:
            problems.append("tl_private must be the same for every host (set it in [all:vars])")
            break

    links = {
        "underlay": (("cli", "ul"), ("srv", "ul")),
        "inner": (("srv", "in"), ("dst", "in")),
    }
    nets = {}
    for link, ((ra, pa), (rb, pb)) in links.items():
        for fam in ("4", "6"):
            a, b = addr[(ra, pa + fam)], addr[(rb, pb + fam)]
            if a.network != b.network:
                problems.append(f"{link} IPv{fam}: {hosts[ra]} {a} and {hosts[rb]} {b} are not on one link prefix: "
                                f"the harness only sends to an on-link peer")
            if a.ip == b.ip:
                problems.append(f"{link} IPv{fam}: {hosts[ra]} and {hosts[rb]} share the address {a.ip}")
            nets[f"{link}{fam}"] = a.network
    nets["tunnel4"], nets["tunnel6"] = tun4, tun6
    for name, net in nets.items():
        if not any(net.version == d.version and net.subnet_of(d) for d in declared):
            problems.append(f"the {name[:-1]} network {net} is outside the declared private prefixes ({declared_text})")
    names = list(nets)
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            if nets[x].version == nets[y].version and nets[x].overlaps(nets[y]):
                problems.append(f"the {x[:-1]} network {nets[x]} overlaps the {y[:-1]} network {nets[y]}")
    for role in ROLES:
        mgmt = str(v[role].get("ansible_host", hosts[role]))
        try:
            m = ipaddress.ip_address(mgmt)
        except ValueError:
            continue  # a DNS name: the controller's business, not an experiment address
        for name, net in nets.items():
            if m.version == net.version and m in net:
                problems.append(f"{hosts[role]}: its management address {m} lies in the {name[:-1]} network {net}: "
                                f"keep Ansible's ssh off the measured links")

    tl_dir = str(v["cli"].get("tl_dir", "/var/tmp/tunlab"))
    if not DIRNAME.match(tl_dir) or ".." in tl_dir or tl_dir.rstrip("/") in ("/tmp", "/var/tmp", "/root", "/home"):
        problems.append(f"tl_dir='{tl_dir}': an absolute directory of its own (e.g. /var/tmp/tunlab)")
    for role in ROLES:
        if str(v[role].get("tl_dir", "/var/tmp/tunlab")) != tl_dir:
            problems.append("tl_dir must be the same for every host (set it in [all:vars])")
            break
    if problems:
        refuse(problems)

    out = {
        "TL_HOST_CLI": hosts["cli"], "TL_HOST_SRV": hosts["srv"], "TL_HOST_DST": hosts["dst"],
        "TL_HOSTS_DIR": tl_dir.rstrip("/"), "TL_HOSTS_PRIVATE": declared_text,
        "TL_CLI_UL_IF": iface[("cli", "ul_if")], "TL_UL_IF": iface[("srv", "ul_if")],
        "TL_IN_IF": iface[("srv", "in_if")], "TL_DST_IN_IF": iface[("dst", "in_if")],
        "TL_CLI_UL4": addr[("cli", "ul4")].ip, "TL_CLI_UL6": addr[("cli", "ul6")].ip,
        "TL_SRV_UL4": addr[("srv", "ul4")].ip, "TL_SRV_UL6": addr[("srv", "ul6")].ip,
        "TL_SRV_IN4": addr[("srv", "in4")].ip, "TL_SRV_IN6": addr[("srv", "in6")].ip,
        "TL_DST_IN4": addr[("dst", "in4")].ip, "TL_DST_IN6": addr[("dst", "in6")].ip,
        "TL_UL_NET4": nets["underlay4"], "TL_UL_NET6": nets["underlay6"],
        "TL_IN_NET4": nets["inner4"], "TL_IN_NET6": nets["inner6"],
        "TL_HOSTS_CLI_NET": net_words(iface, addr, nets, "cli", tun4, tun6),
        "TL_HOSTS_SRV_NET": net_words(iface, addr, nets, "srv", tun4, tun6),
        "TL_HOSTS_DST_NET": net_words(iface, addr, nets, "dst", tun4, tun6),
    }
    for name, value in out.items():
        # The NET lines are word lists; hosts.sh reads the rest of the line.
        print(name, value)


def net_words(iface, addr, nets, role, tun4, tun6):
    """What experiments/ansible/hostnet.sh sets up on ROLE: addr=IF,ADDR/LEN;
    route=NET,GATEWAY,IF (only ever via the on-link peer); forward."""
    words = []
    if role in ("cli", "srv"):
        ul = iface[(role, "ul_if")]
        words += [f"addr={ul},{addr[(role, 'ul4')]}", f"addr={ul},{addr[(role, 'ul6')]}"]
    if role in ("srv", "dst"):
        inn = iface[(role, "in_if")]
        words += [f"addr={inn},{addr[(role, 'in4')]}", f"addr={inn},{addr[(role, 'in6')]}"]
    if role == "cli":
        words += [f"route={nets['inner4']},{addr[('srv', 'ul4')].ip},{ul}",
                  f"route={nets['inner6']},{addr[('srv', 'ul6')].ip},{ul}"]
    if role == "dst":
        for fam, tun in (("4", tun4), ("6", tun6)):
            gw = addr[("srv", "in" + fam)].ip
            words += [f"route={nets['underlay' + fam]},{gw},{inn}", f"route={tun},{gw},{inn}"]
    if role == "srv":
        words.append("forward")
    return " ".join(words)


def refuse(problems):
    print("hosts-check: refusing this inventory: the experiment's traffic must stay between the listed hosts", file=sys.stderr)
    for p in problems:
        print(f"hosts-check:   {p}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
