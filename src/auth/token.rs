//! JWT access tokens: HS256 only (the algorithm is pinned, so `alg: none` and key confusion are
//! refused), with `exp`, `nbf`, `iss` and `aud` all checked.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::UserId;
use crate::error::{AppError, AppResult};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

impl AccessClaims {
    pub fn user_id(&self) -> AppResult<UserId> {
        self.sub.parse().map_err(|_| AppError::Unauthenticated)
    }
}

#[derive(Clone)]
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl TokenIssuer {
    pub fn new(secret: &[u8], issuer: &str, audience: &str, ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(&self, user: UserId, now: OffsetDateTime) -> AppResult<String> {
        let iat = now.unix_timestamp();
        let claims = AccessClaims {
            sub: user.to_string(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat,
            nbf: iat,
            exp: iat + self.ttl.as_secs() as i64,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("jwt encode: {e}")))
    }

    /// Any defect (signature, algorithm, expiry, issuer, audience, shape) is `Unauthenticated`;
    /// the reason is logged at debug level only, so probing learns nothing.
    pub fn verify(&self, token: &str) -> AppResult<AccessClaims> {
        if token.len() > 4096 || has_crit(token) {
            return Err(AppError::Unauthenticated);
        }
        decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| {
                tracing::debug!(reason = %e, "access token refused");
                AppError::Unauthenticated
            })
    }
}

/// Whether the token's header names critical extensions (`crit`). This server understands none,
/// so RFC 7515 (4.1.11) says such a token must be refused; the JWT library would ignore it.
fn has_crit(token: &str) -> bool {
    use base64::Engine;
    let Some(header) = token.split('.').next() else {
        return false;
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
        .is_some_and(|h| h.get("crit").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(SECRET, "conclave", "conclave-api", Duration::from_secs(900))
    }

    fn forge(header: &str, claims: &AccessClaims, sig: &str) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap()),
            sig
        )
    }

    #[test]
    fn round_trip() {
        let u = UserId::new();
        let t = issuer().issue(u, OffsetDateTime::now_utc()).unwrap();
        assert_eq!(issuer().verify(&t).unwrap().user_id().unwrap(), u);
    }

    #[test]
    fn refuses_every_defect() {
        let now = OffsetDateTime::now_utc();
        let good = issuer().issue(UserId::new(), now).unwrap();
        let claims = issuer().verify(&good).unwrap();
        // A critical extension this server does not understand, validly signed: refused, while
        // the same token without it is accepted (so the signing here is right).
        let signed = |header: &str| {
            use hmac::{Hmac, Mac};
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
            );
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap();
            mac.update(input.as_bytes());
            format!(
                "{input}.{}",
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            )
        };
        assert!(
            issuer()
                .verify(&signed(r#"{"alg":"HS256","typ":"JWT"}"#))
                .is_ok()
        );
        assert!(
            issuer()
                .verify(&signed(r#"{"alg":"HS256","crit":["exp2"],"exp2":1}"#))
                .is_err()
        );
        // alg: none, unsigned.
        assert!(
            issuer()
                .verify(&forge(r#"{"alg":"none","typ":"JWT"}"#, &claims, ""))
                .is_err()
        );
        // Another key.
        let other = TokenIssuer::new(
            b"another-secret-another-secret-xx",
            "conclave",
            "conclave-api",
            Duration::from_secs(900),
        );
        assert!(
            issuer()
                .verify(&other.issue(UserId::new(), now).unwrap())
                .is_err()
        );
        // Expired, not yet valid, wrong issuer, wrong audience.
        let enc = EncodingKey::from_secret(SECRET);
        let mk = |f: &dyn Fn(&mut AccessClaims)| {
            let mut c = claims.clone();
            f(&mut c);
            encode(&Header::new(Algorithm::HS256), &c, &enc).unwrap()
        };
        assert!(issuer().verify(&mk(&|c| c.exp = c.iat - 60)).is_err());
        assert!(issuer().verify(&mk(&|c| c.nbf = c.iat + 600)).is_err());
        assert!(issuer().verify(&mk(&|c| c.iss = "evil".into())).is_err());
        assert!(issuer().verify(&mk(&|c| c.aud = "other".into())).is_err());
        // HS512 with the same secret: the algorithm is pinned.
        let hs512 = encode(&Header::new(Algorithm::HS512), &claims, &enc).unwrap();
        assert!(issuer().verify(&hs512).is_err());
        // Tampered payload.
        let mut parts: Vec<&str> = good.split('.').collect();
        let evil = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&AccessClaims {
                sub: UserId::new().to_string(),
                ..claims.clone()
            })
            .unwrap(),
        );
        parts[1] = &evil;
        assert!(issuer().verify(&parts.join(".")).is_err());
        assert!(issuer().verify("garbage").is_err());
        assert!(issuer().verify("").is_err());
    }
}
