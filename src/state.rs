//! What the transports' handlers share: the services and the settings of the HTTP surface. It
//! sits below both transports and the composition root (`app`), which builds it.

use crate::auth::AuthService;
use crate::config::HttpSettings;
use crate::groups::GroupService;
use crate::messages::{MessageService, ReadService};
use crate::ops::health::Readiness;
use crate::ops::metrics::Metrics;

/// Everything a handler may call, cheap to clone. Handlers reach storage, the pipeline and the
/// limiter only through these services.
#[derive(Clone)]
pub struct AppState {
    pub http: HttpSettings,
    pub auth: AuthService,
    pub groups: GroupService,
    pub messages: MessageService,
    pub reads: ReadService,
    pub readiness: Readiness,
    pub metrics: Metrics,
}
