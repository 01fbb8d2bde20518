#!/usr/bin/env python3
"""Set up rooms of plain-RTP G.711 participants, on Janus AudioBridge or on tutti, and
write the generator's participant file ("local_ip local_port remote_ip remote_port room
member" lines).

  rooms.py janus URL ROOMS SIZE GEN_IP FIRST_PORT OUT
  rooms.py tutti URL ROOMS SIZE GEN_IP FIRST_PORT OUT

Janus: one session (no timeout: the config sets session_timeout = 0), one handle per
participant, rooms created with "allow_rtp_participants", each participant joining with
"codec": "pcmu" and "rtp": {ip, port, payload_type 0}; Janus answers with the address it
receives on. tutti: POST /v1/conferences and /v1/conferences/{id}/participants.
"""
import json
import sys
import urllib.request


def post(url, body):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


class Janus:
    def __init__(self, url):
        self.url = url
        self.tx = 0
        self.session = self.call(url, {"janus": "create"})["data"]["id"]
        self.pending = []

    def call(self, url, body):
        self.tx += 1
        body["transaction"] = f"t{self.tx}"
        r = post(url, body)
        if r.get("janus") == "error":
            sys.exit(f"janus error: {r}")
        return r

    def attach(self):
        r = self.call(f"{self.url}/{self.session}", {"janus": "attach", "plugin": "janus.plugin.audiobridge"})
        return r["data"]["id"]

    def message(self, handle, body):
        return self.call(f"{self.url}/{self.session}/{handle}", {"janus": "message", "body": body})

    def event(self, transaction):
        """Long-poll the session until the event answering `transaction` arrives."""
        while True:
            for e in self.pending:
                if e.get("transaction") == transaction:
                    self.pending.remove(e)
                    return e
            evs = get(f"{self.url}/{self.session}?maxev=50")
            self.pending.extend(evs if isinstance(evs, list) else [evs])


def janus(url, rooms, size, gen_ip, first_port, out):
    j = Janus(url)
    admin = j.attach()
    for room in range(rooms):
        r = j.message(admin, {"request": "create", "room": 1000 + room, "sampling_rate": 8000,
                              "allow_rtp_participants": True, "audiolevel_ext": False})
        data = r["plugindata"]["data"]
        if data.get("audiobridge") != "created":
            sys.exit(f"creating room {room}: {data}")
        for m in range(size):
            port = first_port + 2 * (room * size + m)
            h = j.attach()
            r = j.message(h, {"request": "join", "room": 1000 + room, "display": f"p{room}.{m}",
                              "codec": "pcmu", "rtp": {"ip": gen_ip, "port": port, "payload_type": 0}})
            e = j.event(r["transaction"]) if r.get("janus") == "ack" else r
            data = e["plugindata"]["data"]
            if data.get("audiobridge") != "joined" or "rtp" not in data:
                sys.exit(f"joining room {room}: {data}")
            out.write(f"{gen_ip} {port} {data['rtp']['ip']} {data['rtp']['port']} {room} {m}\n")


def tutti(url, rooms, size, gen_ip, first_port, out):
    for room in range(rooms):
        c = post(f"{url}/v1/conferences", {"id": f"r{room}", "max_participants": size,
                                           "active_speakers": "all"})
        for m in range(size):
            port = first_port + 2 * (room * size + m)
            p = post(f"{url}/v1/conferences/{c['id']}/participants",
                     {"remote": f"{gen_ip}:{port}", "codec": "pcmu", "rtcp": False})
            ip, lport = p["local"].rsplit(":", 1)
            out.write(f"{gen_ip} {port} {ip} {lport} {room} {m}\n")


def main():
    kind, url, rooms, size, gen_ip, first_port, path = sys.argv[1:8]
    with open(path, "w") as out:
        {"janus": janus, "tutti": tutti}[kind](url, int(rooms), int(size), gen_ip, int(first_port), out)


if __name__ == "__main__":
    main()
