//! What EC2 instances are launched from: key pairs, launch templates, and the AMI lookup.
