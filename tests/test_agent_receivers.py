"""cc-agent receivers against real senders: an HTTP client, nats-server, a Redfish-shaped HTTPS
server, and (recorded output of) ipmi-sensors; each forwards through the router to a sink."""

from __future__ import annotations

import base64
import gzip
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import trio

from cc.agent.agent import Agent
from cc.agent.collectors import AgentConfigError
from cc.agent.config import parse_agent_config
from cc.agent.lineproto import parse_lines
from cc.agent.message import Message
from cc.agent.receivers import make_receiver
from cc.agent.receivers.ipmi import IpmiReceiver
from tests.helpers import free_port
from tests.nats_server import NatsServer
from tests.tlsfiles import make_tls_files


async def wait_for(pred, timeout: float, what: str) -> None:
    with trio.move_on_after(timeout):
        while not pred():
            await trio.sleep(0.05)
        return
    raise AssertionError(f"timed out waiting for {what}")


def agent_with(tmp: Path, receivers: dict, router: dict | None = None) -> tuple[Agent, Path]:
    out = tmp / "out.lp"
    cfg = parse_agent_config({"main": {"interval": "1h", "hostname": "agenthost", "align_interval": False},
                              "collectors": {}, "router": router or {}, "receivers": receivers,
                              "sinks": {"f": {"type": "stdout", "output_file": str(out)}}}, tmp)
    return Agent(cfg), out


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_line_protocol_parsing_precisions_and_errors():
    msgs, errors = parse_lines("m,a=1,b\\ c=x\\,y value=2i 1700000000\n"
                               "m value=1.5 1700000000123\n"
                               "m value=t 1700000000000000000\n"
                               "bad\nm,x value=1\nm other=1\nm value=1 12ab\n", now=5.0)
    assert msgs == [Message("m", {"a": "1", "b c": "x,y"}, {}, 2, 1700000000.0),
                    Message("m", {}, {}, 1.5, 1700000000.123), Message("m", {}, {}, True, 1700000000.0)]
    assert errors == ["line 4: expected 'measurement[,tags] fields [timestamp]'", "line 5: bad tag 'x'",
                      "line 6: no numeric 'value' field", "line 7: bad timestamp '12ab'"]
    assert parse_lines("m value=3 5000", "ms")[0][0].time == 5.0


async def test_http_receiver_forwards_posts_through_the_router(tmp_path):
    port = free_port()
    agent, out = agent_with(tmp_path, {"in": {"type": "http", "address": "127.0.0.1", "port": str(port),
                                              "path": "/write", "username": "u", "password": "pw",
                                              "process_messages": {"drop_messages": ["dropme"]}}},
                            {"add_tags": [{"key": "via", "value": "agent", "if": "*"}]})
    url = f"http://127.0.0.1:{port}/write"
    auth = {"authorization": "Basic " + base64.b64encode(b"u:pw").decode()}
    async with trio.open_nursery() as nursery:
        shutdown = trio.Event()
        await nursery.start(agent.run, shutdown)
        async with httpx.AsyncClient() as c:
            r1 = await c.post(url, content=b"cpu_load,hostname=n1,type=node value=1.5 1700000000\n"
                                           b"dropme,type=node value=1 1700000000\n", headers=auth)
            body = gzip.compress(b"mem_used,type=node value=7i 1700000000000000000\n")
            r2 = await c.post(url + "?precision=ns", content=body, headers={**auth, "content-encoding": "gzip"})
            r3 = await c.post(url, content=b"x value=1 1\ngarbage\n", headers=auth)
            r4 = await c.post(url, content=b"y value=1 1\n")
            r5 = await c.post(f"http://127.0.0.1:{port}/other", content=b"y value=1 1\n", headers=auth)
            r6 = await c.post(url + "?precision=h", content=b"y value=1 1\n", headers=auth)
        await wait_for(lambda: len(lines(out)) >= 3, 20, "forwarded lines")
        shutdown.set()
    assert [r.status_code for r in (r1, r2, r3, r4, r5, r6)] == [204, 204, 400, 401, 404, 400]
    assert "line 2: expected" in r3.text
    assert lines(out) == ["cpu_load,hostname=n1,type=node,via=agent value=1.5 1700000000",
                          "mem_used,hostname=agenthost,type=node,via=agent value=7i 1700000000",
                          "x,hostname=agenthost,via=agent value=1.0 1"]


async def test_nats_receiver_subscribes_and_forwards(tmp_path):
    from cc.nats import NatsClient, NatsSettings

    srv = NatsServer(tmp_path / "nats").start()
    try:
        agent, out = agent_with(tmp_path, {"n": {"type": "nats", "address": "127.0.0.1", "port": str(srv.port),
                                                 "subject": "ccmetrics"}}, {"cluster": "c9"})
        async with trio.open_nursery() as nursery:
            shutdown = trio.Event()
            await nursery.start(agent.run, shutdown)
            rcv = agent.receivers[0]
            async with NatsClient(NatsSettings((srv.url,)), name="test publisher") as pub:
                await pub.wait_connected(20)
                # the subscription exists once the receiver has logged in; publish until it arrives
                with trio.move_on_after(30):
                    while rcv.received == 0:
                        await pub.publish("ccmetrics", b"warmup,type=node value=0 1\n")
                        await trio.sleep(0.1)
                await pub.publish_many("ccmetrics", [
                    b"flops_any,hostname=n5,type=socket,type-id=0 value=12.5 1700000010\n"
                    b"flops_any,hostname=n5,type=socket,type-id=1 value=13.5 1700000010\n",
                    b"bad line\n"], flush_timeout=10)
                await wait_for(lambda: any("type-id=1" in x for x in lines(out)), 20, "the published lines")
            shutdown.set()
        got = [x for x in lines(out) if not x.startswith("warmup")]
        assert got == ["flops_any,cluster=c9,hostname=n5,type=socket,type-id=0 value=12.5 1700000010",
                       "flops_any,cluster=c9,hostname=n5,type=socket,type-id=1 value=13.5 1700000010"]
        assert rcv.rejected_lines == 1
    finally:
        srv.stop()


# -- a Redfish service: the documents a BMC serves, over HTTPS with basic authentication ----------

def redfish_tree(host: str) -> dict[str, dict]:
    return {
        "/redfish/v1/": {"Chassis": {"@odata.id": "/redfish/v1/Chassis"},
                         "Systems": {"@odata.id": "/redfish/v1/Systems"}},
        "/redfish/v1/Chassis": {"Members": [{"@odata.id": "/redfish/v1/Chassis/1"}]},
        "/redfish/v1/Chassis/1": {"Id": "1", "Name": "Computer System Chassis", "ChassisType": "RackMount",
                                  "Thermal": {"@odata.id": "/redfish/v1/Chassis/1/Thermal"},
                                  "Power": {"@odata.id": "/redfish/v1/Chassis/1/Power"}},
        "/redfish/v1/Chassis/1/Thermal": {
            "Temperatures": [
                {"MemberId": "0", "Name": "CPU1 Temp", "PhysicalContext": "CPU", "ReadingCelsius": 41,
                 "Status": {"State": "Enabled"}},
                {"MemberId": "1", "Name": "Absent", "ReadingCelsius": 0, "Status": {"State": "Absent"}}],
            "Fans": [{"MemberId": "0", "Name": "FAN1", "Reading": 5400, "ReadingUnits": "RPM",
                      "Status": {"State": "Enabled"}},
                     {"MemberId": "1", "Name": "FAN2", "Reading": 10, "ReadingUnits": "RPM", "Status": {}}]},
        "/redfish/v1/Chassis/1/Power": {"PowerControl": [
            {"MemberId": "0", "Name": "System Power Control", "PowerConsumedWatts": 312,
             "PowerMetrics": {"IntervalInMin": 1, "MinConsumedWatts": 290, "MaxConsumedWatts": 350,
                              "AverageConsumedWatts": 305.5}, "Status": {"State": "Enabled"}}]},
        "/redfish/v1/Systems": {"Members": [{"@odata.id": "/redfish/v1/Systems/1"}]},
        "/redfish/v1/Systems/1": {"Processors": {"@odata.id": "/redfish/v1/Systems/1/Processors"}},
        "/redfish/v1/Systems/1/Processors": {"Members": [{"@odata.id": "/redfish/v1/Systems/1/Processors/CPU1"},
                                                         {"@odata.id": "/redfish/v1/Systems/1/Processors/CPU2"}]},
        "/redfish/v1/Systems/1/Processors/CPU1": {"@odata.id": "/redfish/v1/Systems/1/Processors/CPU1",
                                                  "Id": "CPU1", "Name": "Processor", "ProcessorType": "CPU"},
        "/redfish/v1/Systems/1/Processors/CPU2": {"@odata.id": "/redfish/v1/Systems/1/Processors/CPU2",
                                                  "Id": "CPU2", "Name": "Processor", "ProcessorType": "CPU"},
        "/redfish/v1/Systems/1/Processors/CPU1/ProcessorMetrics": {"ConsumedPowerWatt": 65535,
                                                                   "TemperatureCelsius": 52},
    }


class RedfishServer:
    def __init__(self, tmp: Path):
        tls = make_tls_files(tmp / "tls")
        self.requests: list[str] = []
        tree = redfish_tree("bmc")
        srv = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                srv.requests.append(self.path)
                if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"admin:secret").decode():
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                doc = tree.get(self.path)
                body = json.dumps(doc if doc is not None else {"error": "not found"}).encode()
                self.send_response(200 if doc is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls.cert, tls.key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


async def test_redfish_receiver_polls_a_bmc_over_https(tmp_path):
    srv = RedfishServer(tmp_path)
    try:
        agent, out = agent_with(tmp_path, {"bmc": {
            "type": "redfish", "username": "admin", "password": "secret", "interval": "1h",
            "endpoint": f"https://127.0.0.1:{srv.port}", "exclude_metrics": ["min_consumed_watts"],
            "client_config": [{"host_list": "node[01]"},
                               {"host_list": ["node02"], "password": "wrong", "disable_processor_metrics": True}]}})
        async with trio.open_nursery() as nursery:
            shutdown = trio.Event()
            await nursery.start(agent.run, shutdown)
            rcv = agent.receivers[0]
            await wait_for(lambda: rcv.received > 0 and rcv.devices[1].failures > 0, 30, "one poll of both BMCs")
            shutdown.set()
        got = {x.rsplit(" ", 1)[0] for x in lines(out)}
        ch = "chassis_name=Computer\\ System\\ Chassis,chassis_typ=RackMount"
        pc = "power_control_member_id=0,power_control_name=System\\ Power\\ Control,type=node"
        assert got == {
            f"temperature,{ch},hostname=node01,temperature_member_id=0,temperature_name=CPU1\\ Temp,"
            "temperature_physical_context=CPU,type=node value=41.0",
            f"fan_speed,{ch},fan_member_id=0,fan_name=FAN1,hostname=node01,type=node value=5400.0",
            f"consumed_watts,{ch},hostname=node01,{pc} value=312.0",
            f"average_consumed_watts,{ch},hostname=node01,{pc} value=305.5",
            f"max_consumed_watts,{ch},hostname=node01,{pc} value=350.0",
            "temperature,hostname=node01,processor_id=CPU1,processor_name=Processor,processor_typ=CPU,type=socket"
            " value=52.0",
        }
        assert "/redfish/v1/Systems/1/Processors/CPU2/ProcessorMetrics" in srv.requests  # 404: remembered
        assert rcv.devices[1].failures == 1  # node02's BMC refused its password; node01 still delivered
    finally:
        srv.stop()


IPMI_OUTPUT = """\
n1-bmc: 1,01-Inlet Temp,Temperature,24.00,degrees C,'OK'
n1-bmc: 2,CPU1 Temp,Temperature,48.00,degrees C,'OK'
n1-bmc: 3,FAN1 Tach,Fan,6120.00,RPM,'OK'
n1-bmc: 4,PWR Consumption,Current,264.00,Watts,'OK'
n1-bmc: 5,Volt 12V,Voltage,12.10,Volts,'OK'
n1-bmc: 6,PS1 Current,Current,1.40,Amps,'OK'
n1-bmc: 7,CPU Utilization,Processor,37.00,unspecified,'OK'
n1-bmc: 8,Intrusion,Physical Security,N/A,N/A,'OK'
n1-bmc: 9,Drive 0,Drive Slot,N/A,N/A,'Drive Present'
other: 10,FAN9 Tach,Fan,1.00,RPM,'OK'
"""


async def test_ipmi_receiver_turns_ipmi_sensors_output_into_metrics(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (tmp_path / "out.txt").write_text(IPMI_OUTPUT)
    script = bindir / "ipmi-sensors"
    script.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/argv\ncase \"$*\" in *--password\\ secret*) "
                      f"cat {tmp_path}/out.txt;; *) echo 'password invalid' >&2; exit 1;; esac\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    agent, out = agent_with(tmp_path, {"ipmi": {
        "type": "ipmi", "interval": "1h", "username": "admin", "password": "secret",
        "endpoint": "ipmi-sensors://%h-bmc", "exclude_metrics": ["voltage"],
        "client_config": [{"host_list": "n1", "cli_options": ["--workaround-flags=authcap"]}]}})
    async with trio.open_nursery() as nursery:
        shutdown = trio.Event()
        await nursery.start(agent.run, shutdown)
        await wait_for(lambda: agent.receivers[0].received > 0, 30, "one ipmi-sensors round")
        shutdown.set()
    assert [x.rsplit(" ", 1)[0] for x in lines(out)] == [
        "temperature,hostname=n1,name=inlet,type=node value=24.0",
        "temperature,hostname=n1,name=cpu1,type=node value=48.0",
        "fan_speed,hostname=n1,name=fan1,type=node value=6120.0",
        "power,hostname=n1,name=consumption,type=node value=264.0",
        "current,hostname=n1,name=ps1_current,type=node value=1.4",
        "utilization,hostname=n1,name=cpu,type=node value=37.0",
    ]
    argv = (tmp_path / "argv").read_text()
    assert "--hostname n1-bmc --username admin --password secret --workaround-flags=authcap" in argv
    assert "--comma-separated-output" in argv and "--driver-type LAN_2_0" in argv


def test_ipmi_units_and_meta():
    r = make_receiver("i", {"type": "ipmi", "endpoint": "ipmi-sensors://%h", "username": "u", "password": "p",
                            "client_config": [{"host_list": "n[1-2]"}]})
    assert isinstance(r, IpmiReceiver) and [d.endpoint for d in r.devices] == ["ipmi-sensors://n1", "ipmi-sensors://n2"]
    (m,) = r.parse("n1: 1,Inlet Temp,Temperature,75.2,degrees F,'OK'\n", "n1", "n1", 3.0)
    assert m == Message("temperature", {"hostname": "n1", "type": "node", "name": "inlet"},
                        {"source": "i", "group": "IPMI", "unit": "degF"}, 75.2, 3.0)


@pytest.mark.parametrize(("cfg", "error"), [
    ({"type": "htp"}, "receivers.r.type: expected one of http, nats, redfish, ipmi"),
    ({"type": "http", "port": "80x"}, "receivers.r.port: expected a port number"),
    ({"type": "http", "adress": ""}, "receivers.r: unknown key 'adress' for a http receiver"),
    ({"type": "http", "username": "u"}, "receivers.r: basic authentication needs both"),
    ({"type": "nats", "address": "h"}, "receivers.r.subject: the subject to subscribe to is required"),
    ({"type": "redfish", "endpoint": "https://%h"}, "receivers.r.client_config: expected a list"),
    ({"type": "redfish", "client_config": [{"host_list": "n1"}]}, "receivers.r.client_config[0].endpoint"),
    ({"type": "redfish", "endpoint": "https://%h", "client_config": [{"host_list": "n[1-x]"}]},
     "receivers.r.client_config[0].host_list"),
    ({"type": "redfish", "endpoint": "https://%h", "client_config": [{"host_list": "n1", "disable_power": True}]},
     "receivers.r.client_config[0]: unknown key 'disable_power'"),
    ({"type": "ipmi", "endpoint": "ipmi-sensors://%h", "username": "u", "password": "p",
      "client_config": [{"host_list": "n1", "cli_options": ["--password=x"]}]},
     "receivers.r.client_config[0].cli_options: set password through the configuration"),
    ({"type": "ipmi", "endpoint": "ipmitool://%h", "username": "u", "password": "p",
      "client_config": [{"host_list": "n1"}]}, "receivers.r.client_config[0].endpoint: expected 'ipmi-sensors://"),
    ({"type": "ipmi", "endpoint": "ipmi-sensors://%h", "client_config": [{"host_list": "n1"}]},
     "receivers.r.client_config[0].username: required"),
])
def test_receiver_config_errors_name_the_key(cfg, error):
    with pytest.raises(AgentConfigError) as e:
        make_receiver("r", cfg)
    assert error in str(e.value)


async def test_redfish_receiver_verifies_the_certificate_when_asked(tmp_path, caplog):
    srv = RedfishServer(tmp_path)
    try:
        agent, out = agent_with(tmp_path, {"bmc": {
            "type": "redfish", "username": "admin", "password": "secret", "interval": "1h", "http_insecure": False,
            "endpoint": f"https://127.0.0.1:{srv.port}", "client_config": [{"host_list": "node01"}]}})
        async with trio.open_nursery() as nursery:
            shutdown = trio.Event()
            await nursery.start(agent.run, shutdown)
            await wait_for(lambda: agent.receivers[0].devices[0].failures > 0, 30, "the refused certificate")
            shutdown.set()
        assert lines(out) == [] and srv.requests == []
        assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
    finally:
        srv.stop()
