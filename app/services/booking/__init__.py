"""Online booking by patients: the practice's rules, slot holds, one-time codes, identity
matching that reveals nothing, rate limits and a proof-of-work challenge under load."""
