//! Pure domain types: parsed phone numbers, channels, one-time codes, verification records and
//! their lifecycle rules. Nothing here performs I/O; every value that exists is a valid one.

pub mod channel;
pub mod code;
pub mod phone;
pub mod time;
pub mod verification;

pub use channel::{Channel, ChannelError};
pub use code::{CodeError, CodeLength, OtpCode};
pub use phone::{NumberType, PhoneNumber, PhoneNumberError, Region};
pub use time::Timestamp;
pub use verification::{
    AttemptSid, CheckOutcome, CheckRefusal, CheckUpdate, CheckVerdict, Counters, Lifecycle,
    LiveState, MessageFacts, SendAttempt, Verification, VerificationSid, VerificationStatus,
};
