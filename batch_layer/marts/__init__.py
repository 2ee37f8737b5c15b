"""The gold marts: one pure transform per mart (fact and dims in, mart rows out) and the job that writes them."""
