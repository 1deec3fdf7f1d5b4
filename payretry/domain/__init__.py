"""The pure core: states, money, policy, validation. No I/O and no clock: `now` is passed in."""
