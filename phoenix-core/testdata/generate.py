#!/usr/bin/env python3
"""Regenerates the pipeline test corpus (deterministic: fixed seeds).

The process files are shaped like what the OpenTelemetry Collector's hostmetrics `process`
scraper reports on real Linux hosts: user-space processes only (the scraper skips kernel
threads, whose executable cannot be read), per-process resident and virtual memory,
cumulative CPU seconds by state and CPU utilisation since the previous scrape (0..1 of all
cores), cumulative disk bytes. Process mixes, memory sizes and the long-tailed CPU
distribution (a handful of hot processes, hundreds of idle ones) follow typical Kubernetes
web nodes, PostgreSQL hosts and CI runners; short-lived PIDs (health checks, compilers)
appear with high PIDs and are replaced between the two web-01 intervals.

Usage: python3 generate.py   (writes processes/*.json and prometheus/node_exporter.prom)
"""
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, milliseconds
MIB = 1024 * 1024


class Host:
    def __init__(self, name, cpus, seed):
        self.name = name
        self.cpus = cpus
        self.rng = random.Random(seed)
        self.procs = []
        self.next_pid = 1

    def pid(self, pid=None):
        if pid is not None:
            return pid
        self.next_pid += self.rng.randint(1, 40)
        return self.next_pid

    def add(self, exe, path, cmdline, owner, rss_mib, vsz_mib, cores, uptime_s,
            ppid=1, pid=None, wait=0.0, io=(0, 0), command=None):
        """cores: average CPU in cores over the process lifetime and the last interval."""
        rng = self.rng
        pid = self.pid(pid)
        user_share = rng.uniform(0.55, 0.9)
        busy = cores * uptime_s
        util = cores / self.cpus
        rec = {
            "pid": pid,
            "parent_pid": ppid,
            "executable_name": exe,
            "executable_path": path,
            "command": command or exe,
            "command_line": cmdline,
            "owner": owner,
            "cpu_time": {
                "user": round(busy * user_share, 2),
                "system": round(busy * (1 - user_share), 2),
                "wait": round(wait * uptime_s, 2),
            },
            "cpu_utilization": {
                "user": round(util * user_share * rng.uniform(0.8, 1.2), 6),
                "system": round(util * (1 - user_share) * rng.uniform(0.8, 1.2), 6),
                "wait": round(wait / self.cpus, 6),
            },
            "memory_usage_bytes": int(rss_mib * MIB * rng.uniform(0.9, 1.1)) // 4096 * 4096,
            "memory_virtual_bytes": int(vsz_mib * MIB * rng.uniform(0.95, 1.05)) // 4096 * 4096,
            "disk_read_bytes": int(io[0] * rng.uniform(0.5, 1.5)),
            "disk_write_bytes": int(io[1] * rng.uniform(0.5, 1.5)),
        }
        self.procs.append(rec)
        return pid

    def idle(self):
        """Long-tailed idle CPU: most processes use well under 0.1% of a core."""
        return self.rng.lognormvariate(-7.5, 1.5)


def system_base(h):
    rng = h.rng
    day = 86400 * 30
    h.add("systemd", "/usr/lib/systemd/systemd", "/sbin/init", "root", 12, 170, 0.002, day, ppid=0, pid=1)
    h.next_pid = 300
    for exe, rss in [("systemd-journald", 60), ("systemd-udevd", 9), ("systemd-networkd", 8),
                     ("systemd-resolved", 13), ("systemd-timesyncd", 7), ("systemd-logind", 8),
                     ("dbus-daemon", 5), ("cron", 3), ("rsyslogd", 6), ("chronyd", 4),
                     ("irqbalance", 4), ("multipathd", 27), ("polkitd", 9), ("udisksd", 13),
                     ("unattended-upgrade", 22), ("agetty", 2), ("atd", 2)]:
        h.add(exe, f"/usr/sbin/{exe}", f"/usr/sbin/{exe}", "root", rss, rss * 12 + 60,
              h.idle() * 3, day, io=(rng.randint(1, 50) * MIB, rng.randint(1, 400) * MIB))
    sshd = h.add("sshd", "/usr/sbin/sshd", "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups",
                 "root", 9, 15, 0.0001, day, command="sshd")
    for user in ["deploy", "alice"]:
        s = h.add("sshd", "/usr/sbin/sshd", f"sshd: {user}@pts/0", user, 7, 17, 0.0003, 5400, ppid=sshd)
        b = h.add("bash", "/usr/bin/bash", "-bash", user, 5, 9, 0.0001, 5400, ppid=s)
    h.add("node_exporter", "/usr/local/bin/node_exporter",
          "/usr/local/bin/node_exporter --collector.systemd --web.listen-address=:9100",
          "node-exp", 24, 1260, 0.004, day)
    h.add("otelcol-contrib", "/usr/bin/otelcol-contrib",
          "/usr/bin/otelcol-contrib --config=/etc/otelcol-contrib/config.yaml",
          "otelcol", 180, 2100, 0.03, day, io=(40 * MIB, 900 * MIB))
    h.add("fluent-bit", "/opt/fluent-bit/bin/fluent-bit", "/opt/fluent-bit/bin/fluent-bit -c /etc/fluent-bit/fluent-bit.conf",
          "root", 35, 480, 0.012, day, io=(2000 * MIB, 300 * MIB))


def short_lived(h, n, ppid):
    """Health checks and shell pipelines: high PIDs, seconds old, tiny."""
    rng = h.rng
    cmds = [("sh", "/usr/bin/dash", "/bin/sh -c /usr/local/bin/healthcheck.sh"),
            ("curl", "/usr/bin/curl", "curl -fsS http://127.0.0.1:8080/healthz"),
            ("grep", "/usr/bin/grep", "grep -q ready /run/app/status"),
            ("sleep", "/usr/bin/sleep", "sleep 5"),
            ("awk", "/usr/bin/mawk", "awk {print $1}"),
            ("runc", "/usr/bin/runc", "runc --root /run/containerd/runc/k8s.io exec --process /tmp/runc-process"),
            ("date", "/usr/bin/date", "date +%s")]
    for _ in range(n):
        exe, path, cmd = rng.choice(cmds)
        h.next_pid = rng.randint(3_000_000, 4_100_000)
        h.add(exe, path, cmd, "root", rng.uniform(1, 6), rng.uniform(5, 30),
              rng.uniform(0.0, 0.02), rng.uniform(0.05, 3), ppid=ppid)


def web_host():
    h = Host("web-01", 16, 101)
    rng = h.rng
    system_base(h)
    day = 86400 * 12
    containerd = h.add("containerd", "/usr/bin/containerd", "/usr/bin/containerd", "root", 95, 2600, 0.02, day)
    h.add("kubelet", "/usr/bin/kubelet",
          "/usr/bin/kubelet --config=/var/lib/kubelet/config.yaml --container-runtime-endpoint=unix:///run/containerd/containerd.sock",
          "root", 140, 2900, 0.06, day, io=(300 * MIB, 2000 * MIB))
    nginx = h.add("nginx", "/usr/sbin/nginx", "nginx: master process /usr/sbin/nginx -g daemon off;", "root", 12, 60, 0.0005, day,
                  command="nginx: master process")
    for i in range(8):
        h.add("nginx", "/usr/sbin/nginx", "nginx: worker process", "www-data", 48, 120, rng.uniform(0.05, 0.12), day, ppid=nginx,
              command="nginx: worker process", io=(5 * MIB, 800 * MIB))
    pods = [("checkout", "java", 2, 1800, 0.9), ("catalog", "java", 2, 1500, 0.45), ("search", "java", 1, 3200, 1.6),
            ("cart", "node", 3, 210, 0.12), ("frontend", "node", 4, 260, 0.3), ("auth", "python3", 2, 160, 0.05),
            ("recommend", "python3", 2, 900, 0.35), ("payments", "python3", 1, 190, 0.04), ("email", "python3", 1, 140, 0.01),
            ("ads", "java", 1, 1100, 0.22), ("shipping", "envoy", 2, 70, 0.08), ("currency", "node", 2, 120, 0.03),
            ("coredns", "coredns", 2, 40, 0.01), ("ingress", "envoy", 2, 160, 0.4), ("metrics-server", "metrics-server", 1, 45, 0.01),
            ("kube-proxy", "kube-proxy", 1, 55, 0.01), ("calico-node", "calico-node", 1, 130, 0.03),
            ("redis", "redis-server", 1, 380, 0.15), ("memcached", "memcached", 1, 1024, 0.05)]
    for name, exe, replicas, rss, cores in pods:
        for r in range(replicas):
            shim = h.add("containerd-shim-runc-v2", "/usr/bin/containerd-shim-runc-v2",
                         f"/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id {rng.getrandbits(64):016x} -address /run/containerd/containerd.sock",
                         "root", 12, 1240, 0.001, day, ppid=containerd)
            h.add("pause", "/pause", "/pause", "65535", 0.5, 1, 0.0, day, ppid=shim)
            main = h.add(exe, f"/usr/bin/{exe}" if exe != "java" else "/opt/java/openjdk/bin/java",
                         {"java": f"java -XX:MaxRAMPercentage=75 -jar /app/{name}.jar",
                          "node": f"node /app/dist/{name}/server.js",
                          "python3": f"python3 -m gunicorn {name}.wsgi:app --workers 4 --bind 0.0.0.0:8000",
                          "envoy": f"envoy -c /etc/envoy/{name}.yaml --concurrency 2"}.get(exe, f"/{exe}"),
                         "10001", rss * (0.3 if exe == "python3" else 1), rss * 4 + 300, cores * rng.uniform(0.7, 1.3) / replicas,
                         day, ppid=shim, io=(rng.randint(10, 500) * MIB, rng.randint(10, 3000) * MIB))
            # Service-mesh sidecar in every application pod.
            if name not in ("coredns", "kube-proxy", "calico-node", "metrics-server", "ingress"):
                agent = h.add("pilot-agent", "/usr/local/bin/pilot-agent", "/usr/local/bin/pilot-agent proxy sidecar --domain svc.cluster.local",
                              "1337", 45, 760, 0.002, day, ppid=shim)
                h.add("envoy", "/usr/local/bin/envoy", "/usr/local/bin/envoy -c etc/istio/proxy/envoy-rev.json --concurrency 2",
                      "1337", 70, 360, 0.01 + cores * 0.05 / replicas, day, ppid=agent, command="envoy")
            if exe == "python3":
                for w in range(4):
                    h.add(exe, "/usr/bin/python3", f"python3 -m gunicorn {name}.wsgi:app --workers 4 --bind 0.0.0.0:8000",
                          "10001", rss * 0.6, rss * 2 + 200, cores * rng.uniform(0.5, 1.5) / replicas / 4, day, ppid=main)
    # A batch job gone wild: the hottest process on the host is not critical and not a service.
    h.add("ffmpeg", "/usr/bin/ffmpeg", "ffmpeg -i /data/in/upload-8812.mov -c:v libx264 -preset slow /data/out/8812.mp4",
          "10001", 900, 2400, 3.4, 600, io=(9000 * MIB, 2500 * MIB))
    short_lived(h, 72, containerd)
    return h


def db_host():
    h = Host("db-01", 32, 202)
    rng = h.rng
    system_base(h)
    day = 86400 * 40
    h.add("patroni", "/usr/bin/python3", "/usr/bin/python3 /usr/bin/patroni /etc/patroni/config.yml", "postgres", 60, 900, 0.01, day,
          command="patroni")
    pm = h.add("postgres", "/usr/lib/postgresql/16/bin/postgres", "/usr/lib/postgresql/16/bin/postgres -D /var/lib/postgresql/16/main",
               "postgres", 140, 33000, 0.01, day)
    for role in ["checkpointer", "background writer", "walwriter", "autovacuum launcher", "logical replication launcher",
                 "archiver", "walsender replicator 10.0.1.12(53142) streaming 3A/5F000000"]:
        h.add("postgres", "/usr/lib/postgresql/16/bin/postgres", f"postgres: 16/main: {role}", "postgres",
              rng.uniform(20, 400), 33000, rng.uniform(0.001, 0.05), day, ppid=pm, command="postgres", io=(50 * MIB, 9000 * MIB))
    for i in range(150):
        active = rng.random() < 0.12
        cores = rng.uniform(0.2, 0.95) if active else h.idle()
        h.add("postgres", "/usr/lib/postgresql/16/bin/postgres",
              f"postgres: 16/main: app appdb 10.0.2.{rng.randint(2, 250)}({rng.randint(30000, 60000)}) {'SELECT' if active else 'idle'}",
              "postgres", rng.uniform(18, 260), 33100, cores, rng.uniform(60, 86400), ppid=pm, command="postgres",
              io=(rng.randint(0, 4000) * MIB, rng.randint(0, 60) * MIB))
    for i in range(3):
        h.add("postgres", "/usr/lib/postgresql/16/bin/postgres", "postgres: 16/main: autovacuum worker appdb", "postgres",
              rng.uniform(60, 300), 33100, rng.uniform(0.3, 0.9), rng.uniform(5, 300), ppid=pm, command="postgres",
              io=(rng.randint(500, 9000) * MIB, rng.randint(50, 2000) * MIB))
    h.add("pgbouncer", "/usr/sbin/pgbouncer", "/usr/sbin/pgbouncer /etc/pgbouncer/pgbouncer.ini", "postgres", 14, 40, 0.35, day)
    h.add("postgres_exporter", "/usr/local/bin/postgres_exporter", "/usr/local/bin/postgres_exporter --web.listen-address=:9187",
          "postgres", 30, 1250, 0.01, day)
    h.add("wal-g", "/usr/local/bin/wal-g", "wal-g wal-push pg_wal/000000010000003A0000005F", "postgres", 80, 1500, 0.8, 40,
          io=(16 * MIB, 16 * MIB))
    for i in range(60):
        h.add("bash", "/usr/bin/bash", "/bin/bash /usr/local/bin/archive-status.sh", "postgres", 3, 9, h.idle(), 30)
    short_lived(h, 30, 1)
    return h


def ci_host():
    h = Host("ci-runner-01", 64, 303)
    rng = h.rng
    system_base(h)
    day = 86400 * 3
    runner = h.add("gitlab-runner", "/usr/bin/gitlab-runner", "/usr/bin/gitlab-runner run --working-directory /home/gitlab-runner",
                   "gitlab-runner", 70, 1400, 0.02, day)
    dockerd = h.add("dockerd", "/usr/bin/dockerd", "/usr/bin/dockerd -H fd://", "root", 120, 3000, 0.08, day)
    h.add("containerd", "/usr/bin/containerd", "/usr/bin/containerd", "root", 60, 2200, 0.02, day)
    crates = ["serde", "tokio", "hyper", "sqlx", "regex", "syn", "proc-macro2", "rustls", "ring", "h2", "tower", "axum",
              "tracing", "clap", "rand", "chrono", "futures", "bytes", "mio", "libc"]
    for job in range(6):
        shell = h.add("bash", "/usr/bin/bash", "bash -c cargo build --release --locked", "gitlab-runner", 4, 10, 0.0, 400, ppid=runner)
        cargo = h.add("cargo", "/usr/local/cargo/bin/cargo", "cargo build --release --locked", "gitlab-runner", 180, 900,
                      0.05, 380, ppid=shell, io=(900 * MIB, 200 * MIB))
        for i in range(10):
            h.add("rustc", "/usr/local/rustup/toolchains/stable/bin/rustc",
                  f"rustc --crate-name {rng.choice(crates).replace('-', '_')} --edition=2021 -C opt-level=3 -C codegen-units=16",
                  "gitlab-runner", rng.uniform(150, 1400), rng.uniform(1200, 4000), rng.uniform(0.6, 1.0) if i < 3 else rng.uniform(0.01, 0.6),
                  rng.uniform(1, 90), ppid=cargo, io=(rng.randint(10, 200) * MIB, rng.randint(20, 600) * MIB))
        for i in range(14):
            h.add("cc1plus" if i % 3 else "cc", "/usr/lib/gcc/x86_64-linux-gnu/12/cc1plus",
                  f"/usr/lib/gcc/x86_64-linux-gnu/12/cc1plus -quiet -O2 src/vendor/obj{i}.cpp", "gitlab-runner",
                  rng.uniform(60, 500), rng.uniform(200, 900), rng.uniform(0.3, 1.0), rng.uniform(0.5, 20), ppid=cargo)
        for i in range(12):
            h.add("build-script-bu", f"/builds/target/release/build/x-{rng.getrandbits(32):08x}/build-script-build",
                  "build-script-build", "gitlab-runner", rng.uniform(3, 30), rng.uniform(10, 80), rng.uniform(0, 0.3),
                  rng.uniform(0.1, 5), ppid=cargo)
        h.add("ld.lld", "/usr/bin/ld.lld", "ld.lld -o target/release/app @/tmp/rustcXYZ/linker-arguments", "gitlab-runner",
              rng.uniform(400, 2500), 3500, rng.uniform(0.5, 1.0), 8, ppid=cargo)
    for i in range(40):
        h.add("containerd-shim-runc-v2", "/usr/bin/containerd-shim-runc-v2",
              f"/usr/bin/containerd-shim-runc-v2 -namespace moby -id {rng.getrandbits(64):016x}", "root", 10, 1240, 0.001, 900, ppid=dockerd)
    for i in range(40):
        h.add("node", "/usr/local/bin/node", f"node /builds/web/node_modules/.bin/jest --shard={i % 8 + 1}/8", "gitlab-runner",
              rng.uniform(90, 600), rng.uniform(900, 1600), rng.uniform(0.0, 0.9), rng.uniform(5, 200), ppid=runner)
    while len(h.procs) < 500:
        short_lived(h, 1, runner)
    return h


def churn(h):
    """The same host ten seconds later: short-lived PIDs replaced, CPU time advanced."""
    rng = random.Random(h.name + "-next")
    out = []
    for p in h.procs:
        if p["pid"] >= 3_000_000 and rng.random() < 0.8:
            continue
        q = json.loads(json.dumps(p))
        for state in ("user", "system"):
            q["cpu_time"][state] = round(q["cpu_time"][state] + q["cpu_utilization"][state] * h.cpus * 10, 2)
            q["cpu_utilization"][state] = round(q["cpu_utilization"][state] * rng.uniform(0.7, 1.3), 6)
        out.append(q)
    h2 = Host(h.name, h.cpus, 999)
    h2.procs = out
    short_lived(h2, 40, 1)
    return h2


def write(h, file_name, taken_at):
    doc = {"host": h.name, "cpus": h.cpus, "taken_at_ms": taken_at, "interval_secs": 10, "processes": h.procs}
    path = os.path.join(HERE, "processes", file_name)
    with open(path, "w") as f:
        f.write('{"host": %s, "cpus": %d, "taken_at_ms": %d, "interval_secs": 10, "processes": [\n'
                % (json.dumps(h.name), h.cpus, taken_at))
        f.write(",\n".join(json.dumps(p, separators=(",", ":")) for p in h.procs))
        f.write("\n]}\n")
    print(path, len(h.procs))


def node_exporter():
    rng = random.Random(404)
    out = []

    def family(name, typ, help_text, rows):
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {typ}")
        for labels, value in rows:
            lab = ",".join(f'{k}="{v}"' for k, v in labels)
            out.append(f"{name}{{{lab}}} {value}" if lab else f"{name} {value}")

    family("go_gc_duration_seconds", "summary", "A summary of the pause duration of garbage collection cycles.",
           [([("quantile", q)], f"{rng.uniform(1e-5, 4e-4):.6g}") for q in ["0", "0.25", "0.5", "0.75", "1"]])
    out.append(f"go_gc_duration_seconds_sum {rng.uniform(1, 9):.6g}")
    out.append(f"go_gc_duration_seconds_count {rng.randint(1000, 90000)}")
    family("go_goroutines", "gauge", "Number of goroutines that currently exist.", [([], 9)])
    family("go_memstats_alloc_bytes", "gauge", "Number of bytes allocated and still in use.", [([], 3489528)])
    family("go_threads", "gauge", "Number of OS threads created.", [([], 12)])
    modes = ["idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"]
    family("node_cpu_seconds_total", "counter", "Seconds the CPUs spent in each mode.",
           [([("cpu", str(c)), ("mode", m)], f"{rng.uniform(10, 2e6):.2f}") for c in range(16) for m in modes])
    family("node_cpu_guest_seconds_total", "counter", "Seconds the CPUs spent in guests (VMs) for each mode.",
           [([("cpu", str(c)), ("mode", m)], "0") for c in range(16) for m in ["nice", "user"]])
    for n, v in [("load1", 2.31), ("load5", 2.07), ("load15", 1.88)]:
        family(f"node_{n}", "gauge", f"{n[:4].capitalize()} average.", [([], v)])
    mem = ["Active", "Active_anon", "Active_file", "AnonHugePages", "AnonPages", "Bounce", "Buffers", "Cached", "CommitLimit",
           "Committed_AS", "DirectMap1G", "DirectMap2M", "DirectMap4k", "Dirty", "HugePages_Free", "HugePages_Rsvd",
           "HugePages_Surp", "HugePages_Total", "Hugepagesize", "Inactive", "Inactive_anon", "Inactive_file", "KernelStack",
           "Mapped", "MemAvailable", "MemFree", "MemTotal", "Mlocked", "NFS_Unstable", "PageTables", "Percpu", "SReclaimable",
           "SUnreclaim", "ShmemHugePages", "Shmem", "Slab", "SwapCached", "SwapFree", "SwapTotal", "Unevictable",
           "VmallocChunk", "VmallocTotal", "VmallocUsed", "Writeback", "WritebackTmp"]
    for m in mem:
        family(f"node_memory_{m}_bytes", "gauge", f"Memory information field {m}_bytes.", [([], rng.randint(0, 64) * 1073741824 // 7)])
    mounts = [("/", "/dev/nvme0n1p2", "ext4"), ("/boot", "/dev/nvme0n1p1", "vfat"), ("/var/lib/containerd", "/dev/nvme1n1", "xfs"),
              ("/run", "tmpfs", "tmpfs"), ("/run/lock", "tmpfs", "tmpfs"), ("/dev/shm", "tmpfs", "tmpfs"),
              ("/var/lib/kubelet", "/dev/nvme1n1", "xfs"), ("/run/user/1000", "tmpfs", "tmpfs")]
    for metric, typ in [("avail_bytes", "gauge"), ("device_error", "gauge"), ("files", "gauge"), ("files_free", "gauge"),
                        ("free_bytes", "gauge"), ("readonly", "gauge"), ("size_bytes", "gauge")]:
        family(f"node_filesystem_{metric}", typ, f"Filesystem {metric}.",
               [([("device", d), ("fstype", t), ("mountpoint", m)], rng.randint(0, 10**12)) for m, d, t in mounts])
    devices = ["eth0", "lo", "cali1a2b3c4d5e6", "cali7f8e9d0c1b2", "vxlan.calico", "docker0"]
    for metric in ["receive_bytes", "receive_compressed", "receive_drop", "receive_errs", "receive_fifo", "receive_frame",
                   "receive_multicast", "receive_packets", "transmit_bytes", "transmit_carrier", "transmit_colls",
                   "transmit_compressed", "transmit_drop", "transmit_errs", "transmit_fifo", "transmit_packets"]:
        family(f"node_network_{metric}_total", "counter", f"Network device statistic {metric}.",
               [([("device", d)], rng.randint(0, 10**11)) for d in devices])
    disks = ["nvme0n1", "nvme1n1", "dm-0", "loop0"]
    for metric in ["discard_time_seconds_total", "discarded_sectors_total", "discards_completed_total", "discards_merged_total",
                   "io_now", "io_time_seconds_total", "io_time_weighted_seconds_total", "read_bytes_total",
                   "read_time_seconds_total", "reads_completed_total", "reads_merged_total", "write_time_seconds_total",
                   "writes_completed_total", "writes_merged_total", "written_bytes_total", "flush_requests_total",
                   "flush_requests_time_seconds_total"]:
        typ = "gauge" if metric == "io_now" else "counter"
        family(f"node_disk_{metric}", typ, f"Disk statistic {metric}.", [([("device", d)], rng.randint(0, 10**9)) for d in disks])
    for metric in ["Icmp_InErrors", "Icmp_InMsgs", "Icmp_OutMsgs", "Ip_Forwarding", "IpExt_InOctets", "IpExt_OutOctets",
                   "Tcp_ActiveOpens", "Tcp_CurrEstab", "Tcp_InErrs", "Tcp_InSegs", "Tcp_OutRsts", "Tcp_OutSegs",
                   "Tcp_PassiveOpens", "Tcp_RetransSegs", "TcpExt_ListenDrops", "TcpExt_ListenOverflows",
                   "TcpExt_SyncookiesFailed", "TcpExt_SyncookiesRecv", "TcpExt_SyncookiesSent", "TcpExt_TCPSynRetrans",
                   "Udp_InDatagrams", "Udp_InErrors", "Udp_NoPorts", "Udp_OutDatagrams", "Udp_RcvbufErrors", "Udp_SndbufErrors"]:
        family(f"node_netstat_{metric}", "untyped", f"Statistic {metric}.", [([], rng.randint(0, 10**9))])
    units = ([f"{s}.service" for s in ["ssh", "cron", "containerd", "kubelet", "systemd-journald", "systemd-logind",
                                        "systemd-networkd", "systemd-resolved", "dbus", "rsyslog", "chrony", "node_exporter",
                                        "otelcol-contrib", "fluent-bit", "unattended-upgrades", "multipathd", "polkit", "udisks2",
                                        "getty@tty1", "serial-getty@ttyS0", "snapd", "irqbalance", "atd", "apparmor",
                                        "systemd-udevd", "systemd-timesyncd", "systemd-tmpfiles-setup", "setvtrgb", "ufw",
                                        "keyboard-setup", "kmod-static-nodes", "lvm2-monitor", "modprobe@drm", "plymouth-quit",
                                        "systemd-fsck-root", "systemd-random-seed", "systemd-remount-fs", "systemd-sysctl",
                                        "systemd-update-utmp", "systemd-user-sessions"]]
             + [f"run-containerd-io.containerd.runtime.v2.task-k8s.io-{rng.getrandbits(64):016x}-rootfs.mount" for _ in range(48)]
             + [f"{t}.timer" for t in ["apt-daily", "apt-daily-upgrade", "logrotate", "man-db", "fstrim", "motd-news",
                                       "systemd-tmpfiles-clean", "e2scrub_all"]]
             + [f"{s}.socket" for s in ["dbus", "ssh", "systemd-journald", "systemd-journald-dev-log", "systemd-udevd-control",
                                        "systemd-udevd-kernel", "uuidd", "snapd"]])
    states = ["activating", "active", "deactivating", "failed", "inactive"]
    family("node_systemd_unit_state", "gauge", "Systemd unit",
           [([("name", u), ("state", s), ("type", "simple" if u.endswith(".service") else "")], 1 if s == "active" else 0)
            for u in units for s in states])
    collectors = ["arp", "bcache", "bonding", "btrfs", "conntrack", "cpu", "cpufreq", "diskstats", "dmi", "edac", "entropy",
                  "fibrechannel", "filefd", "filesystem", "hwmon", "infiniband", "ipvs", "loadavg", "mdadm", "meminfo",
                  "netclass", "netdev", "netstat", "nfs", "nfsd", "nvme", "os", "powersupplyclass", "pressure", "rapl",
                  "schedstat", "selinux", "sockstat", "softnet", "stat", "systemd", "tapestats", "textfile", "thermal_zone",
                  "time", "timex", "udp_queues", "uname", "vmstat", "xfs", "zfs"]
    family("node_scrape_collector_duration_seconds", "gauge", "node_exporter: Duration of a collector scrape.",
           [([("collector", c)], f"{rng.uniform(1e-5, 0.05):.6g}") for c in collectors])
    family("node_scrape_collector_success", "gauge", "node_exporter: Whether a collector succeeded.",
           [([("collector", c)], 1 if rng.random() > 0.1 else 0) for c in collectors])
    family("node_uname_info", "gauge", "Labeled system information as provided by the uname system call.",
           [([("domainname", "(none)"), ("machine", "x86_64"), ("nodename", "web-01"), ("release", "6.8.0-49-generic"),
             ("sysname", "Linux"), ("version", "#49-Ubuntu SMP PREEMPT_DYNAMIC Mon Nov  4 02:06:24 UTC 2024")], 1)])
    family("node_boot_time_seconds", "gauge", "Node boot time, in unixtime.", [([], 1765000000)])
    family("promhttp_metric_handler_requests_total", "counter", "Total number of scrapes by HTTP status code.",
           [([("code", c)], n) for c, n in [("200", 88211), ("500", 0), ("503", 0)]])
    family("http_request_duration_seconds", "histogram", "Exporter handler latency.", [])
    cum = 0
    for le in ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "+Inf"]:
        cum += rng.randint(0, 20000)
        out.append(f'http_request_duration_seconds_bucket{{le="{le}"}} {cum}')
    out.append(f"http_request_duration_seconds_sum {rng.uniform(100, 900):.3f}")
    out.append(f"http_request_duration_seconds_count {cum}")
    path = os.path.join(HERE, "prometheus", "node_exporter.prom")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    print(path, sum(1 for l in out if not l.startswith("#")))


if __name__ == "__main__":
    web = web_host()
    write(web, "web-01.json", T0)
    write(churn(web), "web-01-next.json", T0 + 10_000)
    write(db_host(), "db-01.json", T0)
    write(ci_host(), "ci-runner-01.json", T0)
    node_exporter()
