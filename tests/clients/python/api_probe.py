"""Drives an engine through Debian's python3-docker (docker-py 5) and reports, per call,
what a program using the library would see: the HTTP status (200 when the call
succeeded, the APIError's status otherwise), the shape of the JSON answer (keys and value
types) and the observed behaviour ("fact": values that do not depend on the engine,
such as command output).

The same script runs against ArcBox and against Docker Engine (dockerd 20.10), so their
answers can be compared call by call (tests/clients/docker-py.test.ts).

usage: DOCKER_HOST=unix:///... python3 api_probe.py IMAGE REGISTRY_IMAGE
"""

import json
import os
import re
import socket
import sys
import threading
import time
import traceback

import docker
from docker.utils.socket import frames_iter

IMG = sys.argv[1]
# An image reference served by a registry both engines reach, for the distribution calls.
REG_IMG = sys.argv[2]
PREFIX = "probe"
# Optional: only these cases (comma-separated), for debugging.
ONLY = [n for n in os.environ.get("PROBE_ONLY", "").split(",") if n]

c = docker.DockerClient(base_url=os.environ["DOCKER_HOST"], version="1.41", timeout=60)
api = c.api
out = {}
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def shape(v):
    """Keys and value types of a JSON answer (IDs used as keys become <id>)."""
    if isinstance(v, dict):
        return {("<id>" if HEX64.match(k) else k): shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    return {"NoneType": "null", "str": "string", "int": "number", "float": "number", "bool": "boolean"}.get(type(v).__name__, type(v).__name__)


def case(name):
    def wrap(fn):
        if ONLY and name not in ONLY:
            return fn
        print(f"case {name}", file=sys.stderr, flush=True)
        try:
            out[name] = fn()
        except Exception as e:  # a failed case is reported, the others still run
            out[name] = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=3)}
        return fn

    return wrap


def call(fn, *a, **kw):
    """(status, answer) of one docker-py call."""
    try:
        return 200, fn(*a, **kw)
    except docker.errors.APIError as e:
        return e.status_code, {"message": e.explanation}


def rec(status, answer=None, fact=None):
    r = {"status": status}
    if answer is not None:
        r["shape"] = shape(answer)
    if fact is not None:
        r["fact"] = fact
    return r


def cleanup():
    for ct in c.containers.list(all=True, filters={"label": "probe"}):
        ct.remove(force=True, v=True)
    for n in c.networks.list(filters={"label": "probe"}):
        n.remove()
    for v in c.volumes.list(filters={"label": "probe"}):
        v.remove(force=True)


cleanup()
LABELS = {"probe": "1"}


def run(*args, **kw):
    kw.setdefault("labels", LABELS)
    kw.setdefault("detach", True)
    return c.containers.run(IMG, *args, **kw)


def wait_for(pred, timeout=15.0, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


# ---------------------------------------------------------------- create options


@case("create_options")
def _():
    vol = c.volumes.create(f"{PREFIX}-vol", labels=LABELS)
    # One pipe for both streams: the logs keep the order things happened in (stdout and
    # stderr are separate pipes, which dockerd itself reorders under load).
    ct = c.containers.create(
        IMG,
        ["sh", "-c", "exec 2>&1; id -u; hostname; hostname -d 2>/dev/null || true; pwd; echo $FOO; grep CapEff /proc/self/status | tr -d '\\t'; "
         "touch /ro-test 2>/dev/null && echo rw || echo ro; touch /scratch/x && echo tmpfs-rw; "
         "grep -c example.test /etc/hosts; grep ^search /etc/resolv.conf; echo data > /vol/f && cat /vol/f; sleep 1000"],
        name=f"{PREFIX}-opts", labels={**LABELS, "x.y": "z"}, environment={"FOO": "bar"}, working_dir="/tmp", user="65534",
        hostname="h1", domainname="example.org", cap_drop=["ALL"], cap_add=["CHOWN"], read_only=True, tmpfs={"/scratch": "size=1m"},
        mem_limit="64m", cpu_shares=512, pids_limit=50, shm_size="8m", extra_hosts={"extra.example.test": "10.1.2.3"},
        dns_search=["probe.example"], restart_policy={"Name": "on-failure", "MaximumRetryCount": 2}, stop_signal="SIGUSR1",
        ports={"8080/tcp": None}, volumes={vol.name: {"bind": "/vol", "mode": "rw"}}, init=False,
    )
    ins_created = api.inspect_container(ct.id)
    ct.start()
    # All 11 lines: the last one (the volume write) comes after the tenth, so waiting for
    # ten raced it under load. The timeout is generous for a loaded CI machine.
    logs = wait_for(lambda: (lambda s: s if s.count("\n") >= 11 else None)(ct.logs().decode()), 60)
    ins = api.inspect_container(ct.id)
    h, cfg = ins["HostConfig"], ins["Config"]
    fact = {
        "created_state": ins_created["State"]["Status"],
        "output": logs,
        "host_config": {k: h.get(k) for k in ["Memory", "CpuShares", "PidsLimit", "ShmSize", "ExtraHosts", "DnsSearch", "RestartPolicy", "ReadonlyRootfs", "Tmpfs", "CapAdd", "CapDrop", "Init"]},
        "config": {k: cfg.get(k) for k in ["User", "WorkingDir", "Hostname", "Domainname", "StopSignal", "Labels", "ExposedPorts"]},
        "name": ins["Name"],
        "mounts": [(m["Type"], m["Name"], m["Destination"], m["RW"]) for m in ins["Mounts"]],
        "port_published": bool((ins["NetworkSettings"]["Ports"] or {}).get("8080/tcp")),
    }
    ct.remove(force=True)
    vol.remove()
    return rec(200, ins, fact)


@case("create_errors")
def _():
    res = {}
    res["bad_restart"] = call(api.create_container, IMG, host_config=api.create_host_config(restart_policy={"Name": "sometimes"}))[0]
    res["unknown_image"] = call(api.create_container, "no-such-image-probe:v0")[0]
    res["dup_name"] = None
    ct = run(["true"], name=f"{PREFIX}-dup")
    res["dup_name"] = call(api.create_container, IMG, name=f"{PREFIX}-dup")[0]
    res["bad_port"] = call(api.create_container, IMG, ports=[99999], host_config=api.create_host_config(port_bindings={99999: None}))[0]
    ct.remove(force=True)
    return rec(200, fact=res)


# ---------------------------------------------------------------- networks


@case("networks")
def _():
    net = c.networks.create(f"{PREFIX}-net", driver="bridge", labels={**LABELS, "k": "v"}, check_duplicate=True)
    dup = call(api.create_network, f"{PREFIX}-net", check_duplicate=True)
    ins = api.inspect_network(net.id)
    srv = c.containers.run(IMG, ["sleep", "1000"], detach=True, labels=LABELS, name=f"{PREFIX}-srv", network=net.name)
    reconnect = call(net.connect, srv, aliases=["db"])[0]  # already connected
    cli = c.containers.get(api.create_container(
        IMG, ["sleep", "1000"], labels=LABELS, name=f"{PREFIX}-cli", host_config=api.create_host_config(network_mode=net.name),
        networking_config=api.create_networking_config({net.name: api.create_endpoint_config(aliases=["client"])}))["Id"])
    cli.start()
    pings = {h: cli.exec_run(["ping", "-c", "1", "-W", "3", h]).exit_code for h in [f"{PREFIX}-srv", "client"]}
    other = c.containers.run(IMG, ["sleep", "1000"], detach=True, labels=LABELS, name=f"{PREFIX}-other")
    net.connect(other, aliases=["late"])
    other_nets = api.inspect_container(other.id)["NetworkSettings"]["Networks"]
    late_ping = cli.exec_run(["ping", "-c", "1", "-W", "3", "late"]).exit_code
    net.reload()
    members = sorted(v["Name"] for v in api.inspect_network(net.id)["Containers"].values())
    net.disconnect(other)
    after = sorted(api.inspect_container(other.id)["NetworkSettings"]["Networks"].keys())
    listed = [n.name for n in c.networks.list(filters={"label": "k=v"})]
    fact = {
        "dup_status": dup[0], "reconnect": reconnect,
        "driver": ins["Driver"], "scope": ins["Scope"], "labels": ins["Labels"],
        "pings": pings, "late_aliases": sorted(a for a in (other_nets.get(net.name) or {}).get("Aliases") or [] if not HEX64.match(a) and len(a) != 12),
        "late_ping": late_ping, "members": members, "after_disconnect": after, "listed": listed,
    }
    for ct in (srv, cli, other):
        ct.remove(force=True)
    pr = api.prune_networks(filters={"label": "probe"})
    fact["prune"] = pr
    fact["gone"] = call(api.inspect_network, net.id)[0]
    return {"status": 200, "shape": {"inspect": shape(ins), "prune": shape(pr)}, "fact": fact}


@case("network_errors")
def _():
    return rec(200, fact={
        "missing_inspect": call(api.inspect_network, "no-such-net-probe")[0],
        "missing_connect": call(api.connect_container_to_network, "no-such-ct-probe", "bridge")[0],
        "remove_predefined": call(api.remove_network, "bridge")[0],
    })


# ---------------------------------------------------------------- exec and attach streams


def read_frames(sock, tty=False, limit=10.0):
    """Everything a hijacked stream sends until EOF, as {stream: bytes}."""
    got = {}

    def expire():
        got["timeout"] = True
        sock._sock.shutdown(socket.SHUT_RDWR)

    # docker-py waits in select() without a timeout: end the socket instead.
    timer = threading.Timer(limit, expire)
    timer.start()
    try:
        for stream, data in frames_iter(sock, tty):
            got[stream] = got.get(stream, b"") + data
    except OSError:
        got["timeout"] = True
    timer.cancel()
    return {str(k): (v.decode() if isinstance(v, bytes) else v) for k, v in got.items()}


@case("exec_streams")
def _():
    ct = run(["sleep", "1000"], name=f"{PREFIX}-exec", stdin_open=True)
    fact = {}
    r = ct.exec_run(["sh", "-c", "echo out; echo err >&2; exit 3"], demux=True)
    fact["demux"] = [r.exit_code, r.output[0].decode(), r.output[1].decode()]
    r = ct.exec_run(["sh", "-c", "echo one; echo two"], stream=True)
    fact["stream"] = b"".join(r.output).decode()
    r = ct.exec_run(["sh", "-c", "echo $A $B; pwd; id -u"], environment={"A": "1", "B": "2"}, workdir="/tmp", user="65534")
    fact["env_workdir_user"] = [r.exit_code, r.output.decode()]
    e = api.exec_create(ct.id, ["cat"], stdin=True)
    sock = api.exec_start(e["Id"], socket=True)
    sock._sock.sendall(b"piped\n")
    sock._sock.shutdown(socket.SHUT_WR)
    fact["stdin_socket"] = read_frames(sock)
    sock.close()
    ins = wait_for(lambda: (lambda i: i if not i["Running"] else None)(api.exec_inspect(e["Id"])), 30)
    fact["stdin_exit"] = ins["ExitCode"]
    d = api.exec_create(ct.id, ["sh", "-c", "sleep 0.2; touch /tmp/detached"])
    fact["detach_start"] = api.exec_start(d["Id"], detach=True)
    fact["detach_ran"] = bool(wait_for(lambda: ct.exec_run(["test", "-f", "/tmp/detached"]).exit_code == 0, 30))
    fact["missing_exec"] = call(api.exec_inspect, "nosuchexecprobe")[0]
    stopped = run(["true"], name=f"{PREFIX}-stopped")
    stopped.wait()
    fact["exec_in_stopped"] = call(api.exec_create, stopped.id, ["true"])[0]
    stopped.remove()
    ct.remove(force=True)
    return {"status": 200, "shape": {"exec_inspect": shape(ins)}, "fact": fact}


@case("attach_streams")
def _():
    fact = {}
    # Output starts after the attach (replaying the log and joining the live output at
    # once is racy on ArcBox, see docs/compat.md).
    # stdout and stderr are separate pipes: a pause keeps their order defined (dockerd
    # itself swaps them under load without one).
    ct = run(["sh", "-c", "sleep 0.5; echo a; sleep 0.3; echo b >&2; sleep 0.5; echo c"], name=f"{PREFIX}-att")
    fact["attach_logs_stream"] = b"".join(ct.attach(stream=True, logs=True, stdout=True, stderr=True)).decode()
    ct.wait()
    ct.remove()
    cat = run(["cat"], name=f"{PREFIX}-cat", stdin_open=True)
    sock = cat.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
    sock._sock.sendall(b"echoed\n")
    time.sleep(0.3)
    sock._sock.shutdown(socket.SHUT_WR)
    fact["attach_stdin"] = read_frames(sock, limit=5)
    sock.close()
    # The session ended, the container did not: its stdin stays open for the next client.
    fact["attach_stdin_container"] = c.containers.get(cat.id).status
    cat.remove(force=True)
    return rec(200, fact=fact)


@case("detach_keys")
def _():
    fact = {}
    ct = run(["cat"], name=f"{PREFIX}-dk", stdin_open=True, tty=True)
    sock = ct.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1, "detachKeys": "ctrl-x,x"})
    sock._sock.sendall(b"hi\n")
    time.sleep(0.3)
    sock._sock.sendall(b"\x18x")
    sock._sock.settimeout(5)
    data = b""
    try:
        while True:
            chunk = sock._sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        data += b"<timeout>"
    fact["attach_output"] = data.decode(errors="replace")
    fact["attach_still_running"] = c.containers.get(ct.id).status
    e = api.exec_create(ct.id, ["cat"], stdin=True, tty=True, detach_keys="ctrl-y")
    s2 = api.exec_start(e["Id"], socket=True, tty=True)
    s2._sock.sendall(b"yo\n\x19")
    s2._sock.settimeout(5)
    d2 = b""
    try:
        while True:
            chunk = s2._sock.recv(4096)
            if not chunk:
                break
            d2 += chunk
    except socket.timeout:
        d2 += b"<timeout>"
    fact["exec_output"] = d2.decode(errors="replace")
    ct.remove(force=True)
    return rec(200, fact=fact)


# ---------------------------------------------------------------- commit


@case("commit")
def _():
    ct = run(["sh", "-c", "echo content > /f; exec sleep 1000"], name=f"{PREFIX}-commit")
    wait_for(lambda: ct.exec_run(["test", "-f", "/f"]).exit_code == 0, 30)
    img = ct.commit(repository="probe-committed", tag="v1", message="probe msg", author="probe author",
                    changes=["ENV C=1", 'CMD ["cat", "/f"]', "LABEL probe.label=yes", "EXPOSE 7000"])
    ins = api.inspect_image(img.id)
    state = api.inspect_container(ct.id)["State"]
    out_run = c.containers.run("probe-committed:v1", remove=True).decode()
    bad = call(api.commit, ct.id, repository="probe-committed", tag="v2", changes=["RUN echo no"])[0]
    missing = call(api.commit, "no-such-ct-probe")[0]
    ct.remove(force=True)
    c.images.remove("probe-committed:v1")
    cfg = ins["Config"]
    return rec(200, ins, {
        "author": ins["Author"], "comment": ins["Comment"], "env_has_c": "C=1" in cfg["Env"], "cmd": cfg["Cmd"],
        "label": cfg["Labels"].get("probe.label"), "exposed": cfg.get("ExposedPorts"), "tags": ins["RepoTags"],
        "running_after": [state["Running"], state["Paused"]], "run": out_run, "bad_change": bad, "missing": missing,
    })


# ---------------------------------------------------------------- health checks


@case("healthcheck")
def _():
    since = int(time.time())
    ct = run(["sh", "-c", "sleep 1; touch /tmp/ok; exec sleep 1000"], name=f"{PREFIX}-health",
             healthcheck={"test": ["CMD-SHELL", "test -f /tmp/ok && echo fine"], "interval": 300_000_000, "timeout": 2_000_000_000, "retries": 20})
    first = api.inspect_container(ct.id)["State"]["Health"]["Status"]
    state = wait_for(lambda: (lambda s: s if s["Health"]["Status"] == "healthy" else None)(api.inspect_container(ct.id)["State"]), 60)
    ev = api.events(since=since, until=int(time.time()) + 1, filters={"container": ct.id, "event": "health_status"}, decode=True)
    statuses = [e["status"] for e in ev]
    health = state["Health"]
    last = health["Log"][-1]
    ct.remove(force=True)
    return rec(200, health, {"first": first, "status": health["Status"], "streak": health["FailingStreak"], "last": [last["ExitCode"], last["Output"]],
                             "events": sorted(set(statuses))})


# ---------------------------------------------------------------- swarm, plugins, distribution


@case("swarm")
def _():
    res = {}
    for name, fn in [("inspect", c.swarm.reload), ("leave", c.swarm.leave), ("services", c.services.list), ("nodes", c.nodes.list),
                     ("secrets", c.secrets.list), ("configs", c.configs.list), ("tasks", lambda: api.tasks())]:
        st, ans = call(fn)
        res[name] = st
    res["leave_force"] = c.swarm.leave(force=True)
    res["plugins"] = call(api.plugins)[0]
    info = c.info()
    return rec(200, {"Swarm": info["Swarm"]}, {"statuses": res, "node_state": info["Swarm"]["LocalNodeState"]})


@case("distribution")
def _():
    st, ans = call(api.inspect_distribution, REG_IMG)
    missing = call(api.inspect_distribution, REG_IMG.rsplit(":", 1)[0] + ":no-such-tag")[0]
    fact = {"missing_tag": missing}
    if st == 200:
        fact["platforms"] = [p.get("architecture") for p in ans.get("Platforms") or []]
        fact["media_type"] = ans["Descriptor"]["mediaType"]
    return rec(st, ans, fact)


# ---------------------------------------------------------------- prune results


@case("prune")
def _():
    a = run(["true"], name=f"{PREFIX}-p1")
    a.wait()
    pc = api.prune_containers(filters={"label": "probe"})
    pc_empty = api.prune_containers(filters={"label": "probe"})
    v = c.volumes.create(f"{PREFIX}-pv", labels=LABELS)
    pv = api.prune_volumes(filters={"label": "probe"})
    pv_empty = api.prune_volumes(filters={"label": "probe"})
    n = c.networks.create(f"{PREFIX}-pn", labels=LABELS)
    pn = api.prune_networks(filters={"label": "probe"})
    pn_empty = api.prune_networks(filters={"label": "probe"})
    pi = api.prune_images(filters={"dangling": True, "label": "probe.none=1"})
    bad = call(api.prune_containers, filters={"nope": "1"})[0]
    return {"status": 200, "shape": {"containers": shape(pc), "containers_empty": shape(pc_empty), "volumes": shape(pv), "volumes_empty": shape(pv_empty),
                                     "networks": shape(pn), "networks_empty": shape(pn_empty), "images_empty": shape(pi)},
            "fact": {"containers": len(pc["ContainersDeleted"] or []), "volumes": pv["VolumesDeleted"], "networks": pn["NetworksDeleted"],
                     "bad_filter": bad}}


# ---------------------------------------------------------------- cancellation


@case("cancellation")
def _():
    fact = {}
    ev = api.events(decode=True)
    t = time.time()
    threading.Timer(0.3, ev.close).start()
    got = []
    try:
        for e in ev:
            got.append(e)
    except Exception:
        pass
    fact["events_closed_within_1s"] = time.time() - t < 1.3
    ct = run(["sh", "-c", "while true; do echo tick; sleep 0.2; done"], name=f"{PREFIX}-logs")
    logs = ct.logs(stream=True, follow=True)
    first = next(logs)
    t = time.time()
    logs.close()
    fact["logs_first"] = first.decode()
    fact["logs_closed_within_1s"] = time.time() - t < 1
    # The engine still answers, and a new events stream sees new events.
    ev2 = api.events(decode=True, filters={"container": ct.id})
    ct.kill()
    seen = []
    timer = threading.Timer(5, ev2.close)
    timer.start()
    try:
        for e in ev2:
            seen.append(e["status"])
            if {"kill", "die"} <= set(seen) or len(seen) > 5:
                break
    except Exception:
        seen.append("<closed>")
    timer.cancel()
    ev2.close()
    # Sorted: ArcBox may report "die" before "kill" (the kill event follows the runtime's answer).
    fact["events_after_kill"] = sorted(seen)
    ct.remove(force=True)
    return rec(200, fact=fact)


cleanup()
print(json.dumps(out))
