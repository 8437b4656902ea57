"""The lab's certificate authority and the certificates it signs, made on this machine with
the `cryptography` package and kept in .lab/<lab>/secrets/ (mode 0600, never printed).

The CA is made once per lab and never changes, so a browser or curl that trusts it keeps
trusting the lab. The site certificate (the lab's site name and the VIP) and, in
reencrypt mode, one certificate per web host are made again when their names change,
when the CA that signed them is not the lab's, or when they near their end."""
import base64
import datetime
import hashlib
import ipaddress
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .state import secrets_dir, write_private

CA_DAYS = 3650          # the CA outlives any lab: trust it once
LEAF_DAYS = 397         # what browsers accept for a server certificate (CA/Browser Forum)
RENEW_BEFORE_DAYS = 30  # a certificate this close to its end is made again at the next provision
CA_CERT, CA_KEY = "ca.crt", "ca.key"


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _new_key():
    return ec.generate_private_key(ec.SECP256R1())  # P-256: every TLS client, small and fast


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def ca_path(lab):
    """Where the lab's CA certificate is (made by `lab_ca` if it is not there yet)."""
    return secrets_dir(lab) / CA_CERT


def lab_ca(lab):
    """(certificate, private key) of the lab's CA: made once, then read back."""
    folder = secrets_dir(lab)
    cert_path, key_path = folder / CA_CERT, folder / CA_KEY
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if cert.public_key().public_numbers() == key.public_key().public_numbers():
            return cert, key
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "halab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"halab {lab.name} lab CA")])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         key_cert_sign=True, crl_sign=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    write_private(key_path, _key_pem(key).encode())  # the key first: a cert without it is remade
    write_private(cert_path, _pem(cert).encode())
    return cert, key


def names_of(cert):
    """(DNS names, IP addresses as strings) of a certificate's subjectAltName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return san.get_values_for_type(x509.DNSName), [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]


def _still_good(cert, key, ca_cert, dns, ips):
    return (cert.issuer == ca_cert.subject
            and cert.public_key().public_numbers() == key.public_key().public_numbers()
            and _signed_by(cert, ca_cert)
            and names_of(cert) == (list(dns), list(ips))
            and cert.not_valid_after_utc - _now() > datetime.timedelta(days=RENEW_BEFORE_DAYS))


def _signed_by(cert, ca_cert):
    try:
        cert.verify_directly_issued_by(ca_cert)
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def leaf(lab, stem, dns, ips):
    """(certificate PEM, key PEM) for a TLS server with these names, signed by the lab's CA;
    kept as <stem>.crt and <stem>.key in the lab's secrets and made again only when needed."""
    ca_cert, ca_key = lab_ca(lab)
    folder = secrets_dir(lab)
    cert_path, key_path = folder / f"{stem}.crt", folder / f"{stem}.key"
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if _still_good(cert, key, ca_cert, dns, ips):
            return cert_path.read_text(), key_path.read_text()
    key = _new_key()
    now = _now()
    alt = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (list(dns) + list(ips))[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         key_cert_sign=False, crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    write_private(key_path, _key_pem(key).encode())
    write_private(cert_path, _pem(cert).encode())
    return cert_path.read_text(), key_path.read_text()


@dataclass(frozen=True)
class TLSMaterial:
    """What provision sends to the hosts: the CA's certificate (public), the site's
    certificate and key, and in reencrypt mode each web host's {name: (cert, key)}."""
    ca_cert: str
    site_cert: str
    site_key: str
    web: dict = field(default_factory=dict)

    @property
    def site_pem(self):
        """HAProxy's `crt` file: the certificate, then its key."""
        return self.site_cert + self.site_key


def site_names(lab):
    """(DNS names, IPs) of the site certificate: the lab's site name and the VIP."""
    return [lab.site], [lab.vip]


def tls_material(lab):
    ca_cert, _ = lab_ca(lab)
    site_cert, site_key = leaf(lab, "site", *site_names(lab))
    web = {h.name: leaf(lab, f"web-{h.name}", [h.name], [h.ip])
           for h in lab.with_role("web")} if lab.tls == "reencrypt" else {}
    return TLSMaterial(_pem(ca_cert), site_cert, site_key, web)


def spki_sha256(cert_pem):
    """base64 SHA-256 of a certificate's public key (SubjectPublicKeyInfo): what chromium's
    --ignore-certificate-errors-spki-list and HPKP pins name."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode() if isinstance(cert_pem, str) else cert_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def fingerprint(cert):
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def hosts_line(lab):
    return f"{lab.vip} {lab.site}"


def trust_instructions(lab, etc_hosts="/etc/hosts"):
    """What `invoke ca` prints: where the lab's CA is and how to trust it in curl and a
    browser, and the /etc/hosts line for the site's name. It changes nothing on this machine
    (beyond making the CA in the lab's secrets if it was not there)."""
    cert, _ = lab_ca(lab)
    path = ca_path(lab)
    try:
        known = any(line.split()[:1] == [lab.vip] and lab.site in line.split()[1:]
                    for line in open(etc_hosts).read().splitlines() if not line.lstrip().startswith("#"))
    except OSError:
        known = False
    nick = f"halab {lab.name} lab CA"
    return "\n".join([
        f"The certificate authority of lab {lab.name} (made once, kept in the lab's secrets, mode 0600):",
        f"  {path}",
        f"  SHA-256 {fingerprint(cert)}",
        f"It signs the site's certificate for {lab.site} and {lab.vip} (tls: {lab.tls}).",
        "",
        "curl:",
        f"  curl --cacert {path} https://{lab.vip}/",
        f"  curl --cacert {path} --resolve {lab.site}:443:{lab.vip} https://{lab.site}/",
        "A browser (trust it for websites; remove it when the lab is gone):",
        f"  Firefox: Settings > Privacy & Security > Certificates > View Certificates > Authorities > Import {path}",
        f"  Chromium or Chrome on Linux: Settings > Privacy and security > Security > Manage certificates >",
        f"    Authorities > Import {path}",
        f"    or: certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n '{nick}' -i {path}  (Debian: libnss3-tools)",
        "",
        f"The name {lab.site}: " + ("already in /etc/hosts." if known else
                                    "not in /etc/hosts; nothing here changes it. To open it by name, add:"),
        *([] if known else [f"  {hosts_line(lab)}",
                            f"  for example: echo '{hosts_line(lab)}' | sudo tee -a /etc/hosts"]),
        f"then open https://{lab.site}/",
    ])
