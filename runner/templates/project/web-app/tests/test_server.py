"""The routes as a pure function, then one real round trip through a socket."""

from __future__ import annotations

import json
import threading
import unittest
import urllib.request

from app import Settings, make_server, respond
from app.settings import parse


class RespondTest(unittest.TestCase):
    settings = Settings(title="Shop <&> co", port=8080, debug=True)

    def test_home_page_escapes_the_title(self) -> None:
        status, kind, body = respond("/", self.settings)
        self.assertEqual((status, kind), (200, "text/html; charset=utf-8"))
        self.assertIn(b"<h1>Shop &lt;&amp;&gt; co</h1>", body)

    def test_health_reports_the_settings(self) -> None:
        status, _, body = respond("/health", self.settings)
        self.assertEqual(status, 200)
        self.assertEqual(
            json.loads(body),
            {"status": "ok", "title": "Shop <&> co", "port": 8080, "debug": True},
        )

    def test_greet_reads_the_query(self) -> None:
        self.assertEqual(json.loads(respond("/api/greet?name=Ada", self.settings)[2]),
                         {"greeting": "Hello, Ada!"})
        self.assertEqual(json.loads(respond("/api/greet", self.settings)[2]),
                         {"greeting": "Hello, world!"})

    def test_unknown_paths_are_404(self) -> None:
        self.assertEqual(respond("/nope", self.settings)[0], 404)


class SettingsTest(unittest.TestCase):
    def test_unknown_keys_and_bad_values_are_errors(self) -> None:
        with self.assertRaises(ValueError):
            parse({"titel": "x"})
        with self.assertRaises(ValueError):
            parse({"port": 70000})
        with self.assertRaises(ValueError):
            parse({"debug": "yes"})


class ServerTest(unittest.TestCase):
    def test_a_real_request(self) -> None:
        server = make_server(Settings(title="t"), port=0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/api/greet?name=orch"
            with urllib.request.urlopen(url, timeout=10) as reply:
                self.assertEqual(json.load(reply), {"greeting": "Hello, orch!"})
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


if __name__ == "__main__":
    unittest.main()
