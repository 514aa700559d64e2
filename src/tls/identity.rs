//! The user a verified client certificate names: its subject's CN, else its first
//! DNS subjectAltName (RabbitMQ's `ssl_cert_login_from = common_name`, with the SAN
//! for certificates that carry no CN).

use rustls::pki_types::CertificateDer;
use x509_cert::Certificate;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Decode, Tag, Tagged};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// `None` when the certificate has neither (or rustls verified something this
/// parser cannot read): the client then logs in as any other.
pub fn cert_user(der: &CertificateDer<'_>) -> Option<String> {
    let cert = Certificate::from_der(der.as_ref()).ok()?;
    let tbs = &cert.tbs_certificate;
    let cn = tbs
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == COMMON_NAME)
        .find_map(|atv| {
            // The string types a CN comes in whose bytes are text as they are.
            match atv.value.tag() {
                Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString => {
                    std::str::from_utf8(atv.value.value())
                        .ok()
                        .map(str::to_string)
                }
                _ => None,
            }
        })
        .filter(|cn| !cn.is_empty());
    cn.or_else(|| {
        let (_, san) = tbs.get::<SubjectAltName>().ok()??;
        san.0.into_iter().find_map(|n| match n {
            GeneralName::DnsName(d) => Some(d.to_string()),
            _ => None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    fn load(name: &str) -> CertificateDer<'static> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/tls/testdata")
            .join(name);
        CertificateDer::from_pem_file(path).expect("test certificate")
    }

    #[test]
    fn common_name_then_dns_name() {
        assert_eq!(cert_user(&load("client.pem")).as_deref(), Some("alice"));
        assert_eq!(
            cert_user(&load("san-only.pem")).as_deref(),
            Some("bob.example")
        );
        assert_eq!(
            cert_user(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])),
            None
        );
    }
}
