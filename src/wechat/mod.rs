//! WeChat's API: tokens, the weekly retain call, and its error taxonomy.

mod client;
mod error;
mod http;
mod throttle;
mod token;
mod token_source;

pub use client::{CallMeter, LeaseHold, RawAnswer, WeChatClient};
pub use error::{ApiErrorCode, Endpoint, ErrorClass, FetchError};
pub use http::{scrub, scrub_json};
pub use token::ForceRefreshBudget;
