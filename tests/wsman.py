"""A small WS-Management endpoint on loopback that speaks the protocol pywinrm uses.

Shell Create / Command / Send / Receive / Signal / Delete over HTTP with basic auth, as a
Windows host answers them, so the real pywinrm client (request building, response parsing,
faults, 401) is exercised. There is no Windows here: commands run locally with /bin/sh, and a
`powershell -EncodedCommand X` runs the decoded text of X with /bin/sh too. The shell's
Environment variables reach the command.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import threading
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NS = {"s": "http://www.w3.org/2003/05/soap-envelope",
      "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
      "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
      "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"}
DONE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"
RUNNING = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running"


@dataclass
class Command:
    proc: subprocess.Popen[bytes]
    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)
    lock: threading.Condition = field(default_factory=threading.Condition)
    readers: int = 2

    def start(self) -> None:
        for stream, buf in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, buf), daemon=True).start()

    def _pump(self, stream: object, buf: bytearray) -> None:
        assert hasattr(stream, "read1")
        while chunk := stream.read1(65536):
            with self.lock:
                buf += chunk
                self.lock.notify_all()
        with self.lock:
            self.readers -= 1
            self.lock.notify_all()


@dataclass
class State:
    user: str
    password: str
    shells: dict[str, dict[str, str]] = field(default_factory=dict)
    commands: dict[str, Command] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)


def _command_line(body: ET.Element) -> str:
    line = body.findtext(".//rsp:Command", "", NS).strip()
    args = body.findtext(".//rsp:Arguments", "", NS)
    words = line.split()
    if words and words[0].lower() == "powershell" and "-EncodedCommand" in words:
        text = words[words.index("-EncodedCommand") + 1]
        return base64.b64decode(text).decode("utf-16-le")
    return f"{line} {args}".strip()


def _envelope(body: str, relates_to: str = "") -> bytes:
    header = f"<a:RelatesTo>{relates_to}</a:RelatesTo>" if relates_to else ""
    return (f'<s:Envelope xmlns:s="{NS["s"]}" xmlns:a="{NS["a"]}" xmlns:w="{NS["w"]}" '
            f'xmlns:rsp="{NS["rsp"]}"><s:Header>{header}</s:Header><s:Body>{body}</s:Body>'
            "</s:Envelope>").encode()


def _timeout_fault() -> bytes:
    return _envelope(
        '<s:Fault><s:Code><s:Value>s:Receiver</s:Value></s:Code><s:Reason><s:Text>'
        'The WS-Management service cannot complete the operation within the time specified in '
        'OperationTimeout.</s:Text></s:Reason><s:Detail><f:WSManFault '
        'xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="2150858793"/>'
        "</s:Detail></s:Fault>")


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *args: object) -> None:
        return None

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/soap+xml;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        state = self.server.state
        data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        expected = base64.b64encode(f"{state.user}:{state.password}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            self.send_response(401)
            self.send_header("WWW-Authenticate", "Basic realm=\"WSMAN\"")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        root = ET.fromstring(data)
        action = root.findtext(".//a:Action", "", NS).rsplit("/", 1)[-1]
        message_id = root.findtext(".//a:MessageID", "", NS)
        shell = root.findtext(".//w:Selector[@Name='ShellId']", "", NS)
        body = root.find("s:Body", NS)
        assert body is not None
        state.requests.append(action)
        if action == "Create":
            shell_id = str(uuid.uuid4()).upper()
            state.shells[shell_id] = {v.get("Name", ""): v.text or ""
                                      for v in body.iterfind(".//rsp:Variable", NS)}
            self._reply(200, _envelope(
                "<x:ResourceCreated xmlns:x=\"http://schemas.xmlsoap.org/ws/2004/09/transfer\">"
                f"<w:SelectorSet><w:Selector Name=\"ShellId\">{shell_id}</w:Selector>"
                "</w:SelectorSet></x:ResourceCreated>"))
        elif action == "Command":
            command_id = str(uuid.uuid4()).upper()
            proc = subprocess.Popen(["/bin/sh", "-c", _command_line(body)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True,
                                    env={**os.environ, **state.shells[shell]})
            state.commands[command_id] = cmd = Command(proc)
            cmd.start()
            self._reply(200, _envelope(f"<rsp:CommandResponse><rsp:CommandId>{command_id}"
                                       "</rsp:CommandId></rsp:CommandResponse>"))
        elif action == "Send":
            stream = body.find(".//rsp:Stream", NS)
            assert stream is not None
            cmd = state.commands[stream.get("CommandId", "")]
            assert cmd.proc.stdin is not None
            cmd.proc.stdin.write(base64.b64decode(stream.text or ""))
            cmd.proc.stdin.flush()
            if stream.get("End") == "true":
                cmd.proc.stdin.close()
            self._reply(200, _envelope("<rsp:SendResponse/>"))
        elif action == "Receive":
            desired = body.find(".//rsp:DesiredStream", NS)
            assert desired is not None
            self._receive(desired.get("CommandId", ""))
        elif action == "Signal":
            sig = body.find(".//rsp:Signal", NS)
            assert sig is not None
            cmd = state.commands.pop(sig.get("CommandId", ""), None)
            if cmd and cmd.proc.poll() is None:
                os.killpg(cmd.proc.pid, signal.SIGKILL)
            self._reply(200, _envelope("<rsp:SignalResponse/>", message_id))
        elif action == "Delete":
            state.shells.pop(shell, None)
            self._reply(200, _envelope("", message_id))
        else:
            self._reply(500, _envelope(f"<s:Fault><s:Reason><s:Text>unknown action {action}"
                                       "</s:Text></s:Reason></s:Fault>"))

    def _receive(self, command_id: str) -> None:
        cmd = self.server.state.commands[command_id]
        with cmd.lock:
            cmd.lock.wait_for(lambda: cmd.out or cmd.err or cmd.readers == 0, timeout=1.0)
            out, err = bytes(cmd.out), bytes(cmd.err)
            cmd.out.clear()
            cmd.err.clear()
            finished = cmd.readers == 0
        if not (out or err or finished):
            self._reply(500, _timeout_fault())
            return
        rc = cmd.proc.wait() if finished else None
        streams = "".join(
            f'<rsp:Stream Name="{name}" CommandId="{command_id}">'
            f"{base64.b64encode(data).decode()}</rsp:Stream>"
            for name, data in (("stdout", out), ("stderr", err)) if data)
        state = (f'<rsp:CommandState CommandId="{command_id}" State="{DONE}">'
                 f"<rsp:ExitCode>{rc}</rsp:ExitCode></rsp:CommandState>" if finished else
                 f'<rsp:CommandState CommandId="{command_id}" State="{RUNNING}"/>')
        self._reply(200, _envelope(f"<rsp:ReceiveResponse>{streams}{state}"
                                   "</rsp:ReceiveResponse>"))


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: State) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = state

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def start_wsman(user: str, password: str) -> Server:
    server = Server(State(user, password))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
