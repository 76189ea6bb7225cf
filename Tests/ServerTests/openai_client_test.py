"""`infer-worker serve` driven by the official openai Python client (and raw urllib requests where a client would not send
such a request). Starts the server through launch/tessera, checks it, ends it with SIGTERM and checks that every
rank exited 0. Run by ServerTests.swift; exits non-zero with a message on the first failed check.

    python openai_client_test.py --repo ROOT --shared SHARED [--topology FILE]
"""
import argparse, json, os, re, signal, socket, subprocess, sys, threading, time

import urllib.error, urllib.parse, urllib.request

import openai

p = argparse.ArgumentParser()
p.add_argument("--repo", required=True)
p.add_argument("--shared", required=True)
p.add_argument("--topology")
args = p.parse_args()

KEY = "test-key"
MODEL_FILE = os.path.join(args.repo, "models/SmolLM2-135M-Instruct.Q4_1.gguf")
NAME = "smollm2"


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def start_server():
    cmd = [os.path.join(args.repo, "launch/tessera")]
    if args.topology:
        cmd += ["--topology", args.topology]
    cmd += ["serve", "--model", MODEL_FILE, "--exact-f32", "--port", "0", "--api-key", KEY, "--served-model-name", NAME,
            "--max-sequences", "2", "--max-queue", "2", "--max-body-bytes", "64K", "--context", "1024",
            "--drain-seconds", "20"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    url = None
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"listening on (http://[0-9.]+:[0-9]+)", line)
        if m:
            url = m.group(1)
            break
    check(url, "the server never said where it listens:\n" + "".join(lines))
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
    while time.time() < deadline:
        try:
            r = raw(url + "/health", timeout=5)
            if r.status_code == 200:
                return proc, url, lines
            check(r.status_code == 503, f"/health while loading answers 503, got {r.status_code}")
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not become healthy:\n" + "".join(lines))


class Raw:
    """A response to a hand-made request (stdlib urllib; the openai client would not send these)."""
    def __init__(self, status, data):
        self.status_code, self.text = status, data.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.text)


def raw(url, json_body=None, content=None, headers=None, timeout=60):
    data = content if content is not None else (json.dumps(json_body).encode() if json_body is not None else None)
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})},
                                 method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Raw(r.status, r.read())
    except urllib.error.HTTPError as e:
        return Raw(e.code, e.read())


def metric(url, name):
    text = raw(url + "/metrics", timeout=10).text
    m = re.search(r"^" + re.escape(name) + r" ([0-9.e+-]+)$", text, re.M)
    check(m, f"/metrics has {name}:\n{text[:2000]}")
    return float(m.group(1))


def wait_metric(url, name, predicate, what, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate(metric(url, name)):
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} ({name} = {metric(url, name)})")


def error_of(response):
    body = response.json()
    check("error" in body and {"message", "type", "param", "code"} <= set(body["error"]), f"an OpenAI error body: {body}")
    return body["error"]


def main():
    proc, url, log = start_server()
    client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=300)
    auth = {"Authorization": f"Bearer {KEY}"}
    try:
        models = client.models.list()
        check([m.id for m in models.data] == [NAME], f"/v1/models lists the served name: {models}")

        # The reference greedy texts of transformers, through the server, whole and streamed.
        for ref_name, chat in [("smollm2-135m-instruct-q4_1", False), ("smollm2-135m-instruct-q4_1.chat", True)]:
            ref = json.load(open(os.path.join(args.shared, "reference", ref_name + ".json")))
            eos = ref["eos_token_id"]
            for case in ref["cases"]:
                ids = case["greedy_ids"]
                ends = ids[-1] == eos
                want = case["greedy_text"].removesuffix("<|im_end|>") if ends else case["greedy_text"]
                reason = "stop" if ends else "length"
                n = len(ids)
                if chat:
                    msgs = [{"role": "user", "content": case["prompt"]}]
                    r = client.chat.completions.create(model=NAME, messages=msgs, max_tokens=n, temperature=0)
                    text, got_reason = r.choices[0].message.content, r.choices[0].finish_reason
                    tok = raw(url + "/tokenize", json_body={"messages": msgs}, headers=auth).json()
                    chunks = list(client.chat.completions.create(model=NAME, messages=msgs, max_tokens=n, temperature=0,
                                                                 stream=True, stream_options={"include_usage": True}))
                    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                else:
                    r = client.completions.create(model=NAME, prompt=case["prompt"], max_tokens=n, temperature=0)
                    text, got_reason = r.choices[0].text, r.choices[0].finish_reason
                    tok = raw(url + "/tokenize", json_body={"prompt": case["prompt"]}, headers=auth).json()
                    chunks = list(client.completions.create(model=NAME, prompt=case["prompt"], max_tokens=n, temperature=0,
                                                            stream=True, stream_options={"include_usage": True}))
                    streamed = "".join(c.choices[0].text for c in chunks if c.choices)
                check(text == want, f"{ref_name}: {case['prompt']!r} gives {text!r}, transformers {want!r}")
                check(got_reason == reason, f"{ref_name}: finish_reason {got_reason}, expected {reason}")
                check(tok["tokens"] == case["prompt_ids"], f"/tokenize gives the reference prompt ids: {tok}")
                check(r.usage.prompt_tokens == len(case["prompt_ids"]), f"usage.prompt_tokens: {r.usage}")
                check(r.usage.completion_tokens == (n - 1 if ends else n), f"usage.completion_tokens: {r.usage}")
                check(streamed == want, f"{ref_name} streamed: {streamed!r}, expected {want!r}")
                usage = chunks[-1].usage
                check(usage is not None and usage.completion_tokens == r.usage.completion_tokens and not chunks[-1].choices,
                      f"the last chunk carries the usage: {chunks[-1]}")
                detok = raw(url + "/detokenize", json_body={"tokens": case["prompt_ids"]}, headers=auth).json()
                check(isinstance(detok.get("prompt"), str), f"/detokenize: {detok}")

        # Log-probabilities: greedy picks the most likely token, so it heads its own top list.
        r = client.completions.create(model=NAME, prompt="The capital of France is", max_tokens=4, temperature=0, logprobs=3)
        lp = r.choices[0].logprobs
        check(len(lp.tokens) == 4 and all(len(t) == 3 for t in lp.top_logprobs), f"completion logprobs: {lp}")
        for token, value, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
            check(value <= 0 and abs(max(top.values()) - value) < 1e-5, f"the greedy token is the most likely: {token} {value} {top}")
        r = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "Hi"}], max_tokens=3,
                                           temperature=0, logprobs=True, top_logprobs=2)
        content = r.choices[0].logprobs.content
        check(len(content) == r.usage.completion_tokens and all(c.top_logprobs[0].token == c.token for c in content),
              f"chat logprobs: {content}")

        # Seeded sampling repeats; the prefix cache serves a repeated prompt's full blocks.
        long_prompt = "Tell me a story about a dragon who learns to bake bread in a small village. " * 4
        a = client.completions.create(model=NAME, prompt=long_prompt, max_tokens=12, temperature=0.9, seed=7)
        b = client.completions.create(model=NAME, prompt=long_prompt, max_tokens=12, temperature=0.9, seed=7)
        check(a.choices[0].text == b.choices[0].text, "the same seed gives the same text")
        check(b.usage.prompt_tokens_details.cached_tokens >= 16, f"the repeated prompt hits the prefix cache: {b.usage}")
        check(metric(url, "tessera:prefix_cache_hits_total") >= 16, "/metrics counts prefix-cache hits")

        # Errors, each with its status and the field at fault.
        try:
            openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()
            raise AssertionError("a wrong API key is refused")
        except openai.AuthenticationError as e:
            check(e.status_code == 401, f"401 for a wrong key: {e}")
        for body, param, pattern in [
            ({"model": "nope", "prompt": "x"}, "model", "nope"),
            ({"model": NAME, "prompt": "x", "max_tokens": -5}, "max_tokens", "-5"),
            ({"model": NAME, "prompt": "x", "n": 2}, "n", "n = 1"),
            ({"model": NAME, "prompt": "x", "temperature": -1}, "temperature", "-1"),
            ({"model": NAME, "prompt": "hello " * 1100}, "prompt", "1024 tokens.*1101 tokens"),
            ({"model": NAME, "prompt": "x", "max_tokens": 5000}, "max_tokens", "1024"),
        ]:
            r = raw(url + "/v1/completions", json_body=body, headers=auth, timeout=60)
            e = error_of(r)
            check(r.status_code == 400 and e["param"] == param and re.search(pattern, e["message"]),
                  f"400 naming {param} for {str(body)[:80]}: {r.status_code} {e}")
        r = raw(url + "/v1/completions", content=b'{"prompt": "x",', headers=auth)
        check(r.status_code == 400 and "malformed JSON" in error_of(r)["message"], f"malformed JSON: {r.text}")
        r = raw(url + "/v1/completions", content=b"x" * 70000, headers=auth)
        check(r.status_code == 413, f"413 over --max-body-bytes: {r.status_code} {r.text}")

        # Two long streams fill both sequences, two more wait, the fifth is refused with 429. Dropping the streams
        # cancels them and frees their KV blocks.
        streams = []
        for i in range(2):
            s = client.completions.create(model=NAME, prompt=f"Story {i}: once upon a time", max_tokens=400,
                                          temperature=0, stream=True, extra_body={"ignore_eos": True})
            it = iter(s)          # kept: a dropped iterator closes its response
            next(it)
            streams.append((s, it))
        wait_metric(url, "tessera:num_requests_running", lambda v: v == 2, "two streams run")
        check(metric(url, "tessera:kv_cache_usage_perc") > 0, "running streams hold KV blocks")
        waiting = []
        for i in range(2):
            t = threading.Thread(target=lambda i=i: waiting.append(client.completions.create(
                model=NAME, prompt=f"Waiting {i}", max_tokens=4, temperature=0)))
            t.start()
            waiting.append(t)
        wait_metric(url, "tessera:num_requests_waiting", lambda v: v == 2, "two requests wait")
        r = raw(url + "/v1/completions", json_body={"model": NAME, "prompt": "one too many", "max_tokens": 2}, headers=auth)
        check(r.status_code == 429, f"429 when the queue is full: {r.status_code} {r.text} (running "
              f"{metric(url, 'tessera:num_requests_running')}, waiting {metric(url, 'tessera:num_requests_waiting')})")
        for s, _ in streams:
            s.close()
        for t in [w for w in waiting if isinstance(w, threading.Thread)]:
            t.join(120)
        check(len([w for w in waiting if not isinstance(w, threading.Thread)]) == 2, "the waiting requests complete")
        wait_metric(url, "tessera:num_requests_running", lambda v: v == 0, "closed streams stop running")
        wait_metric(url, "tessera:kv_cache_usage_perc", lambda v: v == 0, "closed streams free their KV blocks")
        check(metric(url, "tessera:generation_tokens_total") < 2 * 400, "cancelled streams stopped generating")

        # A non-streaming request whose client hangs up is cancelled too (the server sees its input end).
        before = metric(url, "tessera:generation_tokens_total")
        host, port = urllib.parse.urlsplit(url).hostname, urllib.parse.urlsplit(url).port
        body = json.dumps({"model": NAME, "prompt": "A long story:", "max_tokens": 400, "temperature": 0,
                           "ignore_eos": True}).encode()
        sock = socket.create_connection((host, port))
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (host.encode(), KEY.encode(), len(body)) + body)
        wait_metric(url, "tessera:num_requests_running", lambda v: v == 1, "the non-streaming request runs")
        sock.close()
        wait_metric(url, "tessera:num_requests_running", lambda v: v == 0, "a hung-up non-streaming request stops")
        wait_metric(url, "tessera:kv_cache_usage_perc", lambda v: v == 0, "a hung-up non-streaming request frees its blocks")
        check(metric(url, "tessera:generation_tokens_total") - before < 400, "the hung-up request stopped generating")

        # Many concurrent requests all complete.
        results, errors = [], []
        def worker(k):
            try:
                r = client.completions.create(model=NAME, prompt=f"Number {k} is", max_tokens=5, temperature=0)
                results.append(r.choices[0].finish_reason)
            except Exception as e:
                errors.append(repr(e))
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
        for t in threads: t.start()
        for t in threads: t.join(300)
        check(not errors and len(results) == 3, f"concurrent requests complete: {errors}")
        check(metric(url, "tessera:e2e_request_latency_seconds_count") > 10, "/metrics has the latency histograms")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            status = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            status = "hung"
        time.sleep(0.3)
    text = "".join(log)
    check(status == 0, f"SIGTERM ends every rank with status 0, got {status}:\n{text}")
    check("tessera: served" in text, f"the coordinator reports what it served:\n{text}")
    print("server checks passed" + (f" on {args.topology}" if args.topology else ""))


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
