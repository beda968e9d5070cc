//! EC2 networking: VPC, subnets, internet gateway, route tables, security groups and their
//! rules, VPC endpoints.
