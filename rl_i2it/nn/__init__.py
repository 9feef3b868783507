"""Neural-network building blocks: pure functions (`functional`) and shared conv blocks (`blocks`)."""
