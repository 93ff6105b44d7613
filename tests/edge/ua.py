#!/usr/bin/env python3
"""A SIP user agent for the edge lab (tests/it/edge_lab.rs), built on PJSIP (pjsua2).

One process is one user agent bound to one IP address, with no sound hardware (PJSIP's
null audio device). It reads commands from stdin, one a line, runs each to its end within
a deadline, and answers with one JSON line on stdout. Calls it receives are answered by
the policy of the account they are for, and each one, when it ends, is reported as a JSON
line too (an "incoming" event). PJSIP's own output goes to stderr and to the log file.

Commands (words separated by spaces):

  register USER REGISTRAR PROXY|- POLICY
      Registers sip:USER@DOMAIN at REGISTRAR (a SIP URI), through PROXY (a loose-routing
      outbound proxy, or - for none). POLICY says what to do with calls to USER:
      "answer" (answer, then wait for the caller's BYE) or "answer-hangup" (answer, then
      hang up). Reply: {"reply": "register", "user": USER, "status": CODE}.
  call USER TARGET PROXY|- PLAN
      Calls TARGET from sip:USER@DOMAIN through PROXY. PLAN: "hangup" (hang up once
      answered), "wait-bye" (wait for the callee's BYE), "reinvite" (send a re-INVITE
      once answered, then hang up). Reply: {"reply": "call", ...} (see Call.report).
  quit
      Ends the process.

What a call saw on the wire (the requests it received, the final responses to the
requests it sent) is read from PJSIP's message log, by Call-ID: a BYE's 200 arrives after
PJSIP has already reported the call as disconnected.

Every wait is bounded: a command that does not finish in time replies with "error" set,
and the process ends by itself after --lifetime seconds.
"""

import argparse
import json
import os
import re
import select
import time

import pjsua2 as pj

COMMAND_TIMEOUT_S = 12.0
"""The longest a registration, or a call up to its hangup, may take."""

BYE_TIMEOUT_S = 4.0
"""How long a BYE we sent may wait for its final response (PJSIP itself would wait 32 s)."""

TALK_S = 0.5
"""How long an answered call lasts before the side that ends it hangs up (or re-INVITEs)."""

INCOMING_TIMEOUT_S = 12.0
"""The longest an incoming call may last before it is hung up and reported as timed out."""

RECEIVED = re.compile(
    r"RX \d+ bytes (?:Request msg (?P<method>\w+)|Response msg (?P<code>\d+)/(?P<of>\w+))"
    r"/cseq=(?P<cseq>\d+)"
)
CALL_ID = re.compile(r"^(?:Call-ID|i)[ \t]*:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


class Output:
    """The JSON lines channel: the process's original stdout, kept apart from anything
    PJSIP prints (the C library's stdout is sent to stderr)."""

    def __init__(self):
        self.fd = os.dup(1)
        os.dup2(2, 1)

    def send(self, record):
        os.write(self.fd, (json.dumps(record, sort_keys=True) + "\n").encode())


class Wire:
    """What arrived, per Call-ID: requests (method, CSeq) and responses (code, method,
    CSeq)."""

    def __init__(self):
        self.requests = {}
        self.responses = {}

    def note(self, text):
        """Takes one entry of PJSIP's log; keeps it if it is a received message."""
        found = RECEIVED.search(text)
        call_id = CALL_ID.search(text)
        if not found or not call_id:
            return
        cseq = int(found["cseq"])
        if found["method"]:
            entry = (found["method"], cseq)
            self.requests.setdefault(call_id[1], []).append(entry)
        else:
            entry = (int(found["code"]), found["of"], cseq)
            self.responses.setdefault(call_id[1], []).append(entry)

    def methods_received(self, call_id):
        """The requests received in a call, by method, retransmissions left out."""
        seen = []
        for entry in self.requests.get(call_id, []):
            if entry not in seen:
                seen.append(entry)
        return [method for (method, _) in seen]

    def finals(self, call_id, method):
        """The final responses to our requests with `method`, one per CSeq, in order."""
        by_cseq = {}
        for code, of, cseq in self.responses.get(call_id, []):
            if of == method and code >= 200:
                by_cseq.setdefault(cseq, code)
        return [by_cseq[cseq] for cseq in sorted(by_cseq)]


class MessageLog(pj.LogWriter):
    """PJSIP's log: written to a file, and its received messages noted in a Wire."""

    def __init__(self, path, wire):
        pj.LogWriter.__init__(self)
        self.file = open(path, "a", encoding="utf-8")
        self.wire = wire

    def write(self, entry):
        self.file.write(entry.msg if entry.msg.endswith("\n") else entry.msg + "\n")
        self.file.flush()
        self.wire.note(entry.msg)


class Call(pj.Call):
    """One call and what it saw."""

    def __init__(self, agent, account, call_id=pj.PJSUA_INVALID_ID):
        pj.Call.__init__(self, account, call_id)
        self.agent = agent
        self.sip_call_id = None
        self.confirmed = False
        self.disconnected = False
        self.hung_up_by = None
        self.last_status = None
        self.last_reason = None
        self.error = None

    def onCallState(self, prm):
        info = self.getInfo()
        self.sip_call_id = info.callIdString
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.confirmed = True
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True
            self.last_status = info.lastStatusCode
            self.last_reason = info.lastReason
            if self.hung_up_by is None:
                self.hung_up_by = "remote"

    def hang_up(self):
        """Ends the call from this side (a BYE once confirmed)."""
        if self.hung_up_by is None:
            self.hung_up_by = "local"
        self.hangup(pj.CallOpParam())

    def finals(self, method):
        """The final responses to the requests with `method` that this side sent."""
        return self.agent.wire.finals(self.sip_call_id, method)

    def bye_status(self):
        """The final response to our BYE, if we sent one and it came."""
        finals = self.finals("BYE")
        return finals[-1] if finals else None

    def report(self):
        """The JSON-ready view: states, who ended the call, and what came on the wire."""
        invites = self.finals("INVITE")
        return {
            "call_id": self.sip_call_id,
            "confirmed": self.confirmed,
            "disconnected": self.disconnected,
            "hung_up_by": self.hung_up_by,
            "bye_status": self.bye_status(),
            "invite_status": invites[0] if invites else None,
            "reinvite_status": invites[1] if len(invites) > 1 else None,
            "received": self.agent.wire.methods_received(self.sip_call_id),
            "last_status": self.last_status,
            "last_reason": self.last_reason,
            "error": self.error,
        }


class Account(pj.Account):
    """An account whose incoming calls follow a policy ("answer" or "answer-hangup")."""

    def __init__(self, agent, user, policy):
        pj.Account.__init__(self)
        self.agent = agent
        self.user = user
        self.policy = policy
        self.reg_status = None

    def onRegState(self, prm):
        if prm.code >= 200:
            self.reg_status = prm.code

    def onIncomingCall(self, prm):
        call = Call(self.agent, self, prm.callId)
        call.sip_call_id = call.getInfo().callIdString
        self.agent.incoming.append(IncomingCall(self.user, self.policy, call))
        answer = pj.CallOpParam()
        answer.statusCode = 200
        call.answer(answer)


class IncomingCall:
    """A call we answered, followed to its end per its account's policy."""

    def __init__(self, user, policy, call):
        self.user = user
        self.policy = policy
        self.call = call
        self.started = time.monotonic()
        self.confirmed_at = None
        self.bye_sent_at = None

    def step(self, now):
        """Hangs up when the policy says so (or at the deadline); True once the call has
        ended (and a BYE of ours has its answer, or waited long enough)."""
        call = self.call
        if call.confirmed and self.confirmed_at is None:
            self.confirmed_at = now
        hangs_up = self.policy == "answer-hangup" and self.confirmed_at is not None
        if hangs_up and now - self.confirmed_at >= TALK_S and call.hung_up_by is None:
            self.hang_up(now)
        if now - self.started > INCOMING_TIMEOUT_S and not call.disconnected:
            call.error = "timeout"
            self.hang_up(now)
        if not call.disconnected:
            return False
        if self.bye_sent_at is None or call.bye_status() is not None:
            return True
        return now - self.bye_sent_at > BYE_TIMEOUT_S

    def hang_up(self, now):
        """Hangs up, noting when (to wait for the BYE's answer)."""
        self.bye_sent_at = now
        self.call.hang_up()

    def event(self):
        """The JSON-ready report of this call."""
        report = self.call.report()
        report.update({"event": "incoming", "user": self.user, "policy": self.policy})
        return report


class Agent:
    """The PJSIP endpoint, its one UDP transport, its accounts and calls."""

    def __init__(self, bind, domain, log_path):
        self.bind = bind
        self.domain = domain
        self.output = Output()
        self.wire = Wire()
        self.log = MessageLog(log_path, self.wire)
        self.endpoint = pj.Endpoint()
        self.endpoint.libCreate()
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0
        config.uaConfig.mainThreadOnly = True
        config.uaConfig.userAgent = "sipshard-edge-lab"
        config.logConfig.level = 5
        config.logConfig.consoleLevel = 5
        config.logConfig.msgLogging = 1
        config.logConfig.writer = self.log
        config.logConfig.decor = pj.PJ_LOG_HAS_TIME | pj.PJ_LOG_HAS_SENDER
        self.endpoint.libInit(config)
        transport = pj.TransportConfig()
        transport.port = 5060
        transport.boundAddress = bind
        transport.publicAddress = bind
        self.transport = self.endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
        self.endpoint.libStart()
        self.endpoint.audDevManager().setNullDev()
        self.accounts = {}
        self.incoming = []
        self.ended = []

    def account(self, user, registrar=None, proxy=None, policy="answer"):
        """The account of USER, made on first use."""
        if user in self.accounts:
            return self.accounts[user]
        config = pj.AccountConfig()
        config.idUri = f"sip:{user}@{self.domain}"
        config.sipConfig.transportId = self.transport
        if proxy:
            config.sipConfig.proxies.append(proxy)
        if registrar:
            config.regConfig.registrarUri = registrar
            config.regConfig.timeoutSec = 300
        config.regConfig.registerOnAdd = bool(registrar)
        config.natConfig.sipOutboundUse = 0
        config.natConfig.contactRewriteUse = 0
        config.natConfig.viaRewriteUse = 0
        config.natConfig.sdpNatRewriteUse = 0
        config.callConfig.timerUse = pj.PJSUA_SIP_TIMER_INACTIVE
        config.mediaConfig.transportConfig.boundAddress = self.bind
        account = Account(self, user, policy)
        account.create(config)
        self.accounts[user] = account
        return account

    def pump(self, until, timeout_s):
        """Handles SIP events until `until()` holds or the time is up; True if it held."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.endpoint.libHandleEvents(20)
            self.follow_incoming()
            if until():
                return True
        return False

    def follow_incoming(self):
        """Steps every incoming call and reports the ones that ended."""
        now = time.monotonic()
        for incoming in list(self.incoming):
            if incoming.step(now):
                self.output.send(incoming.event())
                self.incoming.remove(incoming)
                self.ended.append(incoming.call)

    def register(self, user, registrar, proxy, policy):
        """The `register` command."""
        account = self.account(user, registrar, proxy, policy)
        self.pump(lambda: account.reg_status is not None, COMMAND_TIMEOUT_S)
        return {"reply": "register", "user": user, "status": account.reg_status}

    def call(self, user, target, proxy, plan):
        """The `call` command: one whole call per PLAN."""
        account = self.account(user, None, proxy)
        call = Call(self, account)
        call.makeCall(target, pj.CallOpParam(True))
        call.sip_call_id = call.getInfo().callIdString
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        left = lambda: max(0.0, deadline - time.monotonic())
        self.pump(lambda: call.confirmed or call.disconnected, left())
        if call.confirmed and not call.disconnected:
            self.play(call, plan, left)
        if not call.disconnected:
            call.error = "timeout"
            call.hang_up()
            self.pump(lambda: call.disconnected, 3.0)
        if call.hung_up_by == "local":
            self.pump(lambda: call.bye_status() is not None, BYE_TIMEOUT_S)
        report = call.report()
        report.update({"reply": "call", "target": target, "plan": plan})
        self.ended.append(call)
        return report

    def play(self, call, plan, left):
        """What the caller does in an answered call."""
        self.pump(lambda: call.disconnected, TALK_S)
        if plan == "reinvite" and not call.disconnected:
            call.reinvite(pj.CallOpParam(True))
            self.pump(lambda: len(call.finals("INVITE")) > 1, left())
            self.pump(lambda: call.disconnected, TALK_S)
        if plan in ("hangup", "reinvite") and not call.disconnected:
            call.hang_up()
        self.pump(lambda: call.disconnected, left())

    def run(self, lifetime_s):
        """Reads and runs commands until `quit`, end of input, or the lifetime is over."""
        deadline = time.monotonic() + lifetime_s
        pending = b""
        while time.monotonic() < deadline:
            self.pump(lambda: True, 0.05)
            ready, _, _ = select.select([0], [], [], 0.05)
            if not ready:
                continue
            chunk = os.read(0, 4096)
            if not chunk:
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if not self.execute(line.decode().split()):
                    return

    def execute(self, words):
        """Runs one command; False for `quit`."""
        if not words:
            return True
        name, args = words[0], [None if a == "-" else a for a in words[1:]]
        if name == "quit":
            return False
        try:
            if name == "register" and len(args) == 4:
                self.output.send(self.register(*args))
            elif name == "call" and len(args) == 4:
                self.output.send(self.call(*args))
            else:
                self.output.send({"reply": "error", "error": f"bad command: {words}"})
        except pj.Error as error:
            self.output.send({"reply": name, "error": error.info()})
        return True

    def close(self):
        """Hangs up what is left and shuts PJSIP down."""
        self.endpoint.hangupAllCalls()
        self.pump(lambda: False, 0.3)
        self.accounts.clear()
        self.incoming.clear()
        self.ended.clear()
        self.endpoint.libDestroy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", required=True, help="the IP address of the UA")
    parser.add_argument("--domain", required=True, help="the domain of its AORs")
    parser.add_argument("--log", required=True, help="PJSIP's log file")
    parser.add_argument("--lifetime", type=float, default=90.0, help="seconds before exit")
    options = parser.parse_args()
    agent = Agent(options.bind, options.domain, options.log)
    agent.output.send({"reply": "ready", "bind": options.bind})
    try:
        agent.run(options.lifetime)
    finally:
        agent.close()


if __name__ == "__main__":
    main()
