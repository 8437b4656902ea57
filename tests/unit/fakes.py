"""Fakes shared by the unit tests."""
from types import SimpleNamespace

from fabfile.core.errors import LabError


class FakeDocker:
    """`docker ...` answered from canned output keyed by the first words of the command:
    a string (exit 0) or (exit code, output); unknown commands print nothing, exit 0."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, *args, check=True):
        self.calls.append(args)
        for words in sorted(self.answers, key=len, reverse=True):
            if args[:len(words)] == words:
                answer = self.answers[words]
                code, out = answer if isinstance(answer, tuple) else (0, answer)
                break
        else:
            code, out = 0, ""
        if check and code:
            raise LabError(f"`docker {' '.join(args)}` failed: canned", "check the docker daemon")
        return SimpleNamespace(returncode=code, stdout=out, stderr="")


def fake_tls(web_hosts=("web1", "web2")):
    """TLS material as provision hands it to the roles, with stand-in PEM text."""
    from fabfile.core.certs import TLSMaterial
    return TLSMaterial("-----BEGIN CERTIFICATE-----\nFAKECA\n-----END CERTIFICATE-----\n",
                       "-----BEGIN CERTIFICATE-----\nFAKESITE\n-----END CERTIFICATE-----\n",
                       "-----BEGIN PRIVATE KEY-----\nFAKESITEKEY\n-----END PRIVATE KEY-----\n",
                       {name: (f"-----BEGIN CERTIFICATE-----\nFAKE{name}\n-----END CERTIFICATE-----\n",
                               f"-----BEGIN PRIVATE KEY-----\nFAKE{name}KEY\n-----END PRIVATE KEY-----\n")
                        for name in web_hosts})
